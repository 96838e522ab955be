import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { agentApiAnswers } from '../helpers/agent-commands.ts';
import { prerequisite } from '../helpers/env.ts';
import { freePort } from '../helpers/ports.ts';
import { runTool, sshKeyPair } from './harness/host-tools.ts';
import { RamdiskVm } from './harness/qemu.ts';
import { buildTestRamdisk, canBuildRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveSsh = prerequisite('OpenSSH client (apt-get install openssh-client)', existsSync('/usr/bin/ssh') && existsSync('/usr/bin/ssh-keygen'));

/**
 * Rescue in the real ramdisk (built --with-ssh): the agent sets the rescue user's password
 * in the ramdisk's /etc/shadow and stops serving; the ramdisk's rescue-login then lets that
 * user in over SSH with the password, which no account could use before.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveSsh)('rescue mode in the ramdisk under QEMU', () => {
  let dir: string;
  let image: BuildResult;
  let vm: RamdiskVm;
  let api: string;
  let sshPort: number;
  let askpass: string;
  let key: { private: string; public: string };

  /** ssh with a password only: SSH_ASKPASS answers the prompt, no key is offered. */
  const sshWithPassword = (user: string, password: string, command: string) =>
    runTool('ssh', [
      '-F', '/dev/null', '-p', String(sshPort),
      '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=60',
      `${user}@127.0.0.1`, command,
    ], { timeoutSeconds: 120, env: { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', INA_TEST_PASSWORD: password, DISPLAY: ':0' } });


  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-rescue-'));
    askpass = join(dir, 'askpass');
    await writeFile(askpass, '#!/bin/sh\nprintf "%s\\n" "$INA_TEST_PASSWORD"\n', { mode: 0o755 });
    key = await sshKeyPair(dir, 'conductor');
    image = await buildTestRamdisk(join(dir, 'image'), { ssh: true, bootc: false });
    const apiPort = await freePort();
    sshPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      mac: '52:54:00:65:43:99',
      hostForwards: [{ hostPort: apiPort, guestPort: 9999 }, { hostPort: sshPort, guestPort: 22 }],
      // Standalone (no ipa-api-url): the API without a token, as the RAID test uses it.
      append: `ip=10.0.2.15::10.0.2.2:255.255.255.0:ina-rescue-test:eth0:off sshkey="${key.public}"`,
    });
    await vm.waitForLine('ssh: dropbear listening', 240);
    await vm.waitForLine('agent API listening', 240);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('before rescue: no password is accepted, the rescue user is locked', async () => {
    const denied = await sshWithPassword('rescue', 'vm rescue pw', 'true');
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  test('finalize_rescue: the agent stops serving, and SSH lets the rescue user in with the password', async () => {
    const res = await request(`${api}/v1/commands/?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'rescue.finalize_rescue', params: { rescue_password: 'vm rescue pw', hashed: false } }),
      headersTimeout: 60_000,
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ command_name: 'finalize_rescue', command_status: 'SUCCEEDED' });
    await vm.waitForLine("ssh: dropbear listening for the rescue user's password", 120);
    await vm.waitForLine('rescue finalized: the API and the heartbeat are stopped for good', 60);

    const inside = await sshWithPassword('rescue', 'vm rescue pw', 'id -u; ls /etc/.rescued; cut -d: -f1,2 /etc/shadow | cut -c1-10; cat /etc/ipa-rescue-config/ipa-rescue-password | cut -c1-3');
    expect(inside.stderr).toBe('');
    expect(inside.code).toBe(0);
    expect(inside.stdout).toBe('0\n/etc/.rescued\nrescue:$5$\n$5$\n');

    const wrong = await sshWithPassword('rescue', 'not the password', 'true');
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toMatch(/Permission denied/);
    // root has no password at all ('*'); keys still work for it.
    expect((await sshWithPassword('root', 'vm rescue pw', 'true')).code).toBe(255);
    expect(await agentApiAnswers(api)).toBe(false);
    // The agent sleeps instead of exiting: the supervisor never starts a serving agent again.
    expect(vm.count('supervise: ironic-node-agent exited')).toBe(0);
  });
});
