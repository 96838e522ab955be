import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { prerequisite } from '../helpers/env.ts';
import { freePort } from '../helpers/ports.ts';
import { runTool, sshKeyPair } from './harness/host-tools.ts';
import { RamdiskVm } from './harness/qemu.ts';
import { buildTestRamdisk, canBuildRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveSsh = prerequisite('OpenSSH client (apt-get install openssh-client)', existsSync('/usr/bin/ssh') && existsSync('/usr/bin/ssh-keygen'));

/**
 * The ramdisk built --with-ssh --with-python --without-bootc, booted with a wrong agent
 * parameter: the agent's error reaches the console and the supervisor keeps restarting it,
 * while SSH (for Ironic's ansible deploy interface) accepts the key from the kernel command
 * line and no other.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveSsh)('the SSH-enabled ramdisk under QEMU', () => {
  let dir: string;
  let image: BuildResult;
  let vm: RamdiskVm;
  let sshPort: number;
  let conductorKey: { private: string; public: string };
  let otherKey: { private: string; public: string };

  const ssh = (key: string, user: string, command: string) =>
    runTool('ssh', [
      '-F', '/dev/null', '-i', key, '-p', String(sshPort),
      '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'PasswordAuthentication=no',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-o', 'ConnectTimeout=60',
      `${user}@127.0.0.1`, command,
    ], { timeoutSeconds: 120 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-ssh-'));
    conductorKey = await sshKeyPair(dir, 'conductor');
    otherKey = await sshKeyPair(dir, 'intruder');
    image = await buildTestRamdisk(join(dir, 'image'), { ssh: true, python: true, bootc: false });
    sshPort = await freePort();
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      mac: '52:54:00:65:43:21',
      hostForwards: [{ hostPort: sshPort, guestPort: 22 }],
      append: [
        // Static configuration as the kernel's ip= parameter has it.
        'ip=10.0.2.15::10.0.2.2:255.255.255.0:ina-ssh-test:eth0:off',
        `sshkey="${conductorKey.public}"`,
        // A wrong value: the agent exits with its error, the supervisor retries.
        'ipa-api-url=http://10.0.2.100:6385 ipa-lookup-timeout=soon',
      ].join(' '),
    });
    await vm.waitForLine('ssh: dropbear listening', 240);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a wrong kernel parameter: the agent error is on the console and the supervisor retries with a back-off', async () => {
    await vm.waitForLine('starting it again in 2s', 120);
    expect(vm.count('ironic-node-agent: invalid configuration')).toBeGreaterThanOrEqual(2);
    expect(vm.count('kernel parameter ipa-lookup-timeout')).toBeGreaterThanOrEqual(2);
    expect(vm.count('supervise: ironic-node-agent exited with code 2')).toBeGreaterThanOrEqual(2);
    expect(vm.running).toBe(true);
  });

  test('SSH accepts the key from the kernel command line, for root and for ansible', async () => {
    const root = await ssh(conductorKey.private, 'root', 'id -u; hostname; ip -4 -o addr show dev eth0');
    expect(root.stderr).toBe('');
    expect(root.code).toBe(0);
    const [uid, hostname, addr] = root.stdout.trim().split('\n');
    expect(uid).toBe('0');
    expect(hostname).toBe('ina-ssh-test');
    expect(addr).toContain('10.0.2.15/24');
    const ansible = await ssh(conductorKey.private, 'ansible', "sudo -H -S -n -u root /bin/sh -c 'echo BECOME-SUCCESS; id -u'");
    expect(ansible.code).toBe(0);
    expect(ansible.stdout).toBe('BECOME-SUCCESS\n0\n');
  });

  test('SSH refuses any other key', async () => {
    for (const user of ['root', 'ansible']) {
      const denied = await ssh(otherKey.private, user, 'true');
      expect(denied.code).toBe(255);
      expect(denied.stderr).toMatch(/Permission denied \(publickey\)/);
    }
  });

  test("the image's tools find all their libraries, and Python runs Ansible-style modules", async () => {
    // ld.so --list names every library a program needs and marks the missing ones.
    const libs = await ssh(
      conductorKey.private,
      'root',
      'n=0; for f in /bin/* /sbin/* /usr/bin/* /usr/sbin/* /usr/lib/openssh/*; do [ -L "$f" ] && continue; ' +
        'head -c 4 "$f" | grep -q ELF || continue; n=$((n + 1)); ' +
        '/lib64/ld-linux-x86-64.so.2 --list "$f" | grep "not found" | sed "s|^|$f: |"; done; echo "checked $n"',
    );
    const checked = /^checked (\d+)$/.exec(libs.stdout.trim());
    expect(libs.stdout.trim()).toMatch(/^checked \d+$/);
    // node, busybox, dropbear, python and the deploy tools
    expect(Number(checked?.[1])).toBeGreaterThan(30);
    const tools = await ssh(
      conductorKey.private,
      'root',
      'qemu-img --version | head -1; sgdisk --version | head -1; lsblk --json --bytes /dev/vda >/dev/null 2>&1; lsblk --version; ' +
        'python3 -c "import json, sys; print(json.dumps({\\"python\\": sys.version_info[0]}))"',
    );
    expect(tools.code).toBe(0);
    expect(tools.stdout).toMatch(/qemu-img version 7\./);
    expect(tools.stdout).toMatch(/GPT fdisk \(sgdisk\)/);
    expect(tools.stdout).toMatch(/lsblk from util-linux/);
    expect(tools.stdout).toContain('{"python": 3}');
  });
});
