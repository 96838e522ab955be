import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseLan6Addresses, parseLanPrint, readBmc } from '../../src/hardware/inventory/bmc.ts';
import { cpuFrom } from '../../src/hardware/inventory/cpu.ts';
import { dimmMegabytes, meminfoBytes } from '../../src/hardware/inventory/memory.ts';
import { vendorFromDmidecode, vendorFromLshw } from '../../src/hardware/inventory/system-vendor.ts';
import { renderInventory } from '../../src/hardware/inventory/table.ts';
import type { Inventory } from '../../src/hardware/inventory/inventory.ts';
import { ToolError, type RunCommand } from '../../src/run.ts';
import { fixture } from '../helpers/fake-drives.ts';

describe('cpu (lscpu, /proc/cpuinfo)', () => {
  test('a two-socket Xeon', () => {
    const cpu = cpuFrom(fixture('lscpu-xeon.txt'), '');
    expect(cpu).toMatchObject({ model_name: 'Intel(R) Xeon(R) Gold 6126 CPU @ 2.60GHz', frequency: '3700.0000', count: 48, architecture: 'x86_64', socket_count: 2 });
    expect(cpu.flags.slice(0, 3)).toEqual(['fpu', 'vme', 'de']);
    expect(cpu.flags).toContain('avx512f');
  });
  test('flags and MHz from /proc/cpuinfo when lscpu has none (a VM)', () => {
    const lscpu = fixture('lscpu-xeon.txt').replace(/^Flags:.*\n/m, '').replace(/^CPU max MHz:.*\n/m, '');
    const cpuinfo = 'processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2445.404\nflags\t\t: fpu sse2 avx\n\nprocessor\t: 1\nflags\t\t: other\n';
    expect(cpuFrom(lscpu, cpuinfo)).toMatchObject({ frequency: '2445.404', flags: ['fpu', 'sse2', 'avx'] });
  });
});

describe('memory', () => {
  test('MemTotal in bytes; installed DIMMs from dmidecode -t 17 in MiB (empty slots ignored)', () => {
    expect(meminfoBytes('MemTotal:       24683656 kB\nMemAvailable:   19808000 kB\n', 'MemTotal')).toBe(24683656 * 1024);
    expect(dimmMegabytes(fixture('dmidecode-memory.txt'))).toBe(32 * 1024 + 16384);
    expect(dimmMegabytes('# dmidecode 3.4\n/dev/mem: No such file or directory\n')).toBeNull();
  });
});

describe('system vendor', () => {
  test('from dmidecode -t system -t bios', () => {
    expect(vendorFromDmidecode(fixture('dmidecode-system-bios.txt'))).toEqual({
      product_name: 'PowerEdge R640', serial_number: 'ABC1234', manufacturer: 'Dell Inc.',
      firmware: { vendor: 'Dell Inc.', version: '2.11.2', build_date: '04/28/2021' },
    });
  });
  test('from lshw -json', () => {
    const lshw = JSON.stringify({ id: 'host', product: 'ThinkSystem SR650', vendor: 'Lenovo', serial: 'J30A1234', children: [{ id: 'core', children: [{ id: 'firmware', vendor: 'Lenovo', version: 'IVE164L', date: '03/04/2021' }] }] });
    expect(vendorFromLshw(lshw)).toEqual({ product_name: 'ThinkSystem SR650', serial_number: 'J30A1234', manufacturer: 'Lenovo', firmware: { vendor: 'Lenovo', version: 'IVE164L', build_date: '03/04/2021' } });
  });
});

describe('BMC (ipmitool)', () => {
  test('lan print and lan6 print parsing', () => {
    expect(parseLanPrint(fixture('ipmitool-lan-print.txt'))).toEqual({ ip: '10.0.0.5', mac: 'd0:94:66:11:22:33' });
    expect(parseLan6Addresses(fixture('ipmitool-lan6-dynamic.txt'), true)).toBe('2001:db8:1234::5/64');
    expect(parseLan6Addresses(fixture('ipmitool-lan6-static.txt'), false)).toBe('2001:db8:5678::10/64');
  });

  test('channels tried in order; invalid channels skipped; nothing without an IPMI device or when Ironic skips detection', async () => {
    const dev = mkdtempSync(join(tmpdir(), 'ina-dev-'));
    writeFileSync(join(dev, 'ipmi0'), '');
    const calls: string[] = [];
    const run: RunCommand = async (file, args) => {
      calls.push(args.join(' '));
      if (args[0] === 'lan' && args[2] === '1') throw new ToolError(file, 'ipmitool exited with 1: Invalid channel: 1', 1);
      if (args[0] === 'lan') return fixture('ipmitool-lan-print.txt');
      return args[3] === 'dynamic_addr' ? 'IPv6 Dynamic Address 0:\n    Source/Type:    DHCPv6\n    Address:        ::/0\n    Status:         active\n' : fixture('ipmitool-lan6-static.txt');
    };
    expect(await readBmc(run, { skip: false, devRoot: dev })).toEqual({ bmc_address: '10.0.0.5', bmc_v6address: '2001:db8:5678::10/64', bmc_mac: 'd0:94:66:11:22:33' });
    expect(calls.slice(0, 2)).toEqual(['lan print 1', 'lan print 2']);
    expect(await readBmc(run, { skip: true, devRoot: dev })).toEqual({ bmc_address: null, bmc_v6address: null });
    const none = mkdtempSync(join(tmpdir(), 'ina-dev-'));
    mkdirSync(join(none, 'ipmi'));
    expect(await readBmc(run, { skip: false, devRoot: none })).toEqual({ bmc_address: null, bmc_v6address: null });
    const missing: RunCommand = async (file) => {
      throw new ToolError(file, `${file} is not installed`);
    };
    expect(await readBmc(missing, { skip: false, devRoot: dev })).toEqual({ bmc_address: null, bmc_v6address: null });
  });
});

describe('inventory table', () => {
  test('a readable summary with disks and NICs as columns', () => {
    const inv: Inventory = {
      interfaces: [{ name: 'eno1', mac_address: '52:54:00:12:34:56', ipv4_address: '192.0.2.10', ipv6_address: null, has_carrier: true, lldp: null, vendor: '0x8086', product: '0x1572', client_id: null, biosdevname: null, speed_mbps: 10000, pci_address: '0000:3b:00.0', driver: 'i40e' }],
      cpu: { model_name: 'Xeon', frequency: '3700', count: 48, architecture: 'x86_64', flags: [], socket_count: 2 },
      disks: [{ name: '/dev/sda', model: 'PERC H730', size: 479559942144, rotational: false, wwn: null, serial: '00a1', vendor: 'DELL', wwn_with_extension: null, wwn_vendor_extension: null, hctl: '0:2:0:0', by_path: null, logical_sectors: 512, physical_sectors: 4096, tran: 'sas' }],
      memory: { total: 134890614784, physical_mb: 131072, headroom: { ram_available_bytes: 2 ** 35, tmpfs: [{ mount: '/tmp', size_bytes: 2 ** 34, free_bytes: 2 ** 33 }] } },
      bmc_address: '10.0.0.5', bmc_v6address: '::/0', bmc_mac: 'd0:94:66:11:22:33',
      system_vendor: { product_name: 'PowerEdge R640', serial_number: 'ABC1234', manufacturer: 'Dell Inc.', firmware: { vendor: 'Dell Inc.', version: '2.11.2', build_date: '2021' } },
      boot: { current_boot_mode: 'uefi', pxe_interface: '01-52-54-00-12-34-56' },
      hostname: 'node-7',
    };
    const text = renderInventory(inv);
    expect(text).toContain('System    Dell Inc. PowerEdge R640  serial ABC1234');
    expect(text).toContain('Boot      uefi, PXE 01-52-54-00-12-34-56');
    expect(text).toMatch(/\/dev\/sda\s+446\.6 GiB\s+PERC H730\s+00a1\s+no\s+sas\s+0:2:0:0/);
    expect(text).toMatch(/eno1\s+52:54:00:12:34:56\s+192\.0\.2\.10\s+-\s+yes\s+10000 Mb\/s\s+i40e/);
    expect(text).toContain('BMC       10.0.0.5 (d0:94:66:11:22:33)');
  });
});
