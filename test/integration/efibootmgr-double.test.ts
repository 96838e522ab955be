import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { efibootmgrDouble } from '../helpers/efibootmgr-double.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';

const REAL = '/usr/bin/efibootmgr';
// The comparison only means something where the real one cannot reach NVRAM either.
const noEfivars = !existsSync('/sys/firmware/efi/efivars');
const canCompare = prerequisite('efibootmgr 17 (Debian package efibootmgr) on a machine without efivars', existsSync(REAL) && noEfivars);
const canRun = prerequisite('root (loop devices)', isRoot);

function call(bin: string, args: string[], path?: string) {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: path ? { ...process.env, PATH: path } : process.env });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const dir = mkdtempSync(join(tmpdir(), 'ina-efibootmgr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!canCompare)('the efibootmgr double answers as efibootmgr 17 does without efivars', () => {
  const double = efibootmgrDouble(dir);
  const ARGVS: string[][] = [
    [], ['--version'], ['-V'], ['-v'], ['-vv'], ['-v2'], ['-h'], ['--help'], ['--foo'], ['-Z'], ['--label'], ['--crea'], ['--c'],
    ['--create=x'], ['-p'], ['-p', 'abc'], ['-p', '1x', '-v'], ['-b', 'zz', '-B'], ['-b', '0x1g', '-B'], ['-b', '10000', '-B'], ['-B'],
    ['-y', '-r'], ['-b', '0001', '-B'], ['-a', '-b', '3'],
    // What the agent sends (IPA's argv).
    ['-v', '-c', '-d', '/dev/null', '-p', '1', '-w', '-L', 'ironic1', '-l', '\\EFI\\BOOT\\BOOTX64.EFI'],
  ];
  for (const argv of ARGVS) {
    test(`efibootmgr ${argv.join(' ') || '(no arguments)'}`, () => {
      // Both by name through PATH: getopt's messages start with argv[0].
      expect(call('efibootmgr', argv, dir)).toEqual(call('efibootmgr', argv, '/usr/bin'));
    });
  }
});

describe.skipIf(!canRun)('the efibootmgr double with NVRAM in a file', () => {
  let disk: LoopDevice;
  let espUuid: string;
  const ESP_RANGE = '0x800,0x32000';

  beforeAll(async () => {
    disk = await LoopDevice.create(256 * 2 ** 20);
    sh('sgdisk', ['-n', '1:2048:+100M', '-t', '1:EF00', '-n', '2:0:0', disk.path]);
    espUuid = sh('sgdisk', ['-i', '1', disk.path]).match(/Partition unique GUID: (\S+)/)![1]!.toLowerCase();
  });
  afterAll(async () => {
    await disk?.destroy();
  });

  const fresh = () =>
    efibootmgrDouble(mkdtempSync(join(dir, 'nvram-')), {
      bootCurrent: 1,
      timeout: 0,
      bootOrder: [1, 0],
      entries: [
        { num: 0, label: 'ironic1', active: true, devicePath: 'HD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\old\\x.efi)' },
        { num: 1, label: 'UEFI: PXE IPv4', active: true, devicePath: 'PciRoot(0x0)/Pci(0x1c,0x0)/MAC(525400123456,0)/IPv4(0.0.0.00.0.0.0,0,0)', optionalData: '..BO' },
      ],
    });

  test('-c takes the first free number, goes first in BootOrder, warns about the duplicate label, and prints the listing', () => {
    const d = fresh();
    const r = call(d.bin, ['-v', '-c', '-d', disk.path, '-p', '1', '-w', '-L', 'ironic1', '-l', '\\EFI\\BOOT\\BOOTX64.EFI']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('efibootmgr: ** Warning ** : Boot0000 has same label ironic1\n');
    expect(r.stdout).toBe(
      'BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0002,0001,0000\n' +
        'Boot0000* ironic1\tHD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\old\\x.efi)\n' +
        'Boot0001* UEFI: PXE IPv4\tPciRoot(0x0)/Pci(0x1c,0x0)/MAC(525400123456,0)/IPv4(0.0.0.00.0.0.0,0,0)..BO\n' +
        `Boot0002* ironic1\tHD(1,GPT,${espUuid},${ESP_RANGE})/File(\\EFI\\BOOT\\BOOTX64.EFI)\n`,
    );
  });

  test('-b N -B removes the entry and its BootOrder slot; the freed number is reused; without -v no paths', () => {
    const d = fresh();
    expect(call(d.bin, ['-b', '0000', '-B']).stdout).toBe('BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0001\nBoot0001* UEFI: PXE IPv4\n');
    call(d.bin, ['-c', '-d', disk.path, '-p', '1', '-L', 'debian', '-l', '\\EFI\\debian\\shimx64.efi']);
    expect(d.state().entries.map((e) => [e.num, e.label])).toEqual([[1, 'UEFI: PXE IPv4'], [0, 'debian']]);
    expect(d.state().bootOrder).toEqual([0, 1]);
  });

  test('refuses what efibootmgr refuses: an unknown entry, a partition the disk lacks, a disk that is not there', () => {
    const d = fresh();
    expect(call(d.bin, ['-b', '0007', '-B'])).toMatchObject({ status: 15, stderr: 'Could not delete variable: No such file or directory\n' });
    expect(call(d.bin, ['-c', '-d', disk.path, '-p', '9', '-L', 'x'])).toMatchObject({ status: 5, stderr: 'Could not prepare Boot variable: No such file or directory\n' });
    expect(call(d.bin, ['-c', '-d', '/dev/nonexistent', '-p', '1', '-L', 'x'])).toMatchObject({ status: 5 });
    expect(d.state().entries).toHaveLength(2);
    expect(d.calls().map((c) => c.exit)).toEqual([15, 5, 5]);
  });

  test('what it does not emulate fails loudly instead of pretending', () => {
    const d = fresh();
    expect(call(d.bin, ['-o', '0001,0000'])).toMatchObject({ status: 99, stderr: 'efibootmgr double: option -o is not emulated\n' });
    expect(call(d.bin, ['-c', '-L', 'x', 'extra'])).toMatchObject({ status: 99 });
  });

  test('prints UTF-16 when the state asks for it (builds that printed UCS-2)', () => {
    const d = fresh();
    d.setState({ ...d.state(), encoding: 'utf-16' });
    const r = spawnSync(d.bin, ['-v']);
    expect([...r.stdout.subarray(0, 4)]).toEqual([0xff, 0xfe, 0x42, 0x00]);
    expect(r.stdout.subarray(2).toString('utf16le')).toMatch(/^BootCurrent: 0001\n/);
  });
});
