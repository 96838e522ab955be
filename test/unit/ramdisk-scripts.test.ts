import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const LIB = fileURLToPath(new URL('../../image-build/ramdisk/lib/', import.meta.url));

/**
 * The ramdisk's shell helpers, run by the machine's POSIX sh and awk (busybox sh and awk in
 * the ramdisk; the QEMU tests run them there).
 */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ina-scripts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sh(script: string, opts: { cmdline?: string; sysfs?: string } = {}): Promise<string> {
  const cmdline = join(dir, 'cmdline');
  await writeFile(cmdline, `${opts.cmdline ?? ''}\n`);
  return execFileSync('sh', ['-c', `. ${LIB}cmdline.sh; . ${LIB}netconf.sh; ${script}`], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, CMDLINE_FILE: cmdline, SYSFS: opts.sysfs ?? join(dir, 'nosys') },
  });
}

describe('cmdline_get reads the kernel command line as the kernel splits it', () => {
  test('a quoted value keeps its blanks and loses its quotes (sshkey="...")', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq conductor@host';
    const out = await sh('cmdline_get sshkey', { cmdline: `console=ttyS0 sshkey="${key}" ipa-api-url=http://10.0.2.2:6385` });
    expect(out).toBe(`${key}\n`);
  });

  test('every occurrence in order; cmdline_last takes the later one', async () => {
    const cmdline = 'ip=dhcp BOOTIF=01-aa-bb-cc-dd-ee-ff ip=off x=1';
    expect(await sh('cmdline_get ip', { cmdline })).toBe('dhcp\noff\n');
    expect(await sh('cmdline_last ip', { cmdline })).toBe('off\n');
    expect(await sh('cmdline_get nothere', { cmdline })).toBe('');
  });

  test('a name is matched whole, and a bare word has an empty value', async () => {
    const cmdline = 'ina-console-shell sshkeys=no ip6=x';
    expect(await sh('cmdline_get sshkey; cmdline_get ip; echo end', { cmdline })).toBe('end\n');
    expect(await sh('cmdline_true ina-console-shell && echo yes', { cmdline })).toBe('yes\n');
    expect(await sh('cmdline_true ina-console-shell && echo yes || echo no', { cmdline: 'ina-console-shell=0' })).toBe('no\n');
    expect(await sh('cmdline_true ina-console-shell && echo yes || echo no', { cmdline: 'ina-console-shell=1' })).toBe('yes\n');
  });
});

describe('parse_ip understands the kernel and dracut forms of ip=', () => {
  const parse = async (value: string) => (await sh(`parse_ip '${value}'`)).trim();

  test('methods alone', async () => {
    expect(await parse('dhcp')).toBe('method=dhcp');
    expect(await parse('on')).toBe('method=dhcp');
    expect(await parse('off')).toBe('method=off');
    expect(await parse('none')).toBe('method=off');
    expect(await parse('auto6')).toBe('method=auto6');
  });

  test("dracut's <device>:<method>", async () => {
    expect(await parse('eth1:dhcp')).toBe("method=dhcp device='eth1'");
    expect(await parse('eno2:off')).toBe("method=off device='eno2'");
  });

  test("the kernel's static form, with a dotted netmask or a prefix length, and DNS servers", async () => {
    expect(await parse('192.0.2.10::192.0.2.1:255.255.255.0:node-1:eth0:off:192.0.2.53:192.0.2.54')).toBe(
      "method=static device='eth0' address='192.0.2.10' prefix='24' gateway='192.0.2.1' hostname='node-1' dns='192.0.2.53 192.0.2.54'",
    );
    expect(await parse('198.51.100.7:::22::::')).toBe(
      "method=static device='' address='198.51.100.7' prefix='22' gateway='' hostname='' dns=''",
    );
    expect(await parse('192.0.2.10::192.0.2.1:255.255.240.0')).toContain("prefix='20'");
  });

  test("the kernel's form with an autoconf method", async () => {
    expect(await parse(':::::eth2:dhcp')).toBe("method=dhcp device='eth2' hostname=''");
  });

  test('bad input is an error, never a half configuration', async () => {
    expect(await parse('192.0.2.10::192.0.2.1:255.0.255.0::eth0:off')).toMatch(/^error='bad netmask/);
    expect(await parse('::192.0.2.1:24::eth0:off')).toMatch(/^error='ip=.* has no client address/);
    expect(await parse('192.0.2.10:::24::eth0:magic')).toMatch(/^error='unknown autoconf method/);
    expect(await parse('[2001:db8::2]::[2001:db8::1]:64::eth0:off')).toMatch(/^error='IPv6 addresses in ip= are not supported/);
    expect(await sh(`parse_ip "eth0'; reboot; ':dhcp"`)).toMatch(/^error='quotes and backslashes are not allowed/);
  });
});

describe('BOOTIF and NIC selection', () => {
  test('bootif_mac takes the pxelinux form and a plain MAC, and rejects anything else', async () => {
    expect(await sh('bootif_mac 01-52-54-00-AB-CD-EF')).toBe('52:54:00:ab:cd:ef\n');
    expect(await sh('bootif_mac 52:54:00:ab:cd:ef')).toBe('52:54:00:ab:cd:ef\n');
    expect(await sh('bootif_mac 01-52-54-00; echo end')).toBe('end\n');
  });

  test('nic_list lists NICs with a device, and nic_by_mac finds one', async () => {
    const sys = join(dir, 'sys');
    for (const [name, mac, physical] of [
      ['eth0', '52:54:00:00:00:01', true],
      ['eth1', '52:54:00:00:00:02', true],
      ['lo', '00:00:00:00:00:00', false],
      ['br0', '52:54:00:00:00:03', false],
    ] as const) {
      await mkdir(join(sys, 'class/net', name), { recursive: true });
      await writeFile(join(sys, 'class/net', name, 'address'), `${mac}\n`);
      if (physical) await mkdir(join(sys, 'class/net', name, 'device'), { recursive: true });
    }
    expect(await sh('nic_list', { sysfs: sys })).toBe('eth0\neth1\n');
    expect(await sh('nic_by_mac 52:54:00:00:00:02', { sysfs: sys })).toBe('eth1\n');
    expect(await sh('nic_by_mac 52:54:00:00:00:03 || echo none', { sysfs: sys })).toBe('none\n');
  });
});
