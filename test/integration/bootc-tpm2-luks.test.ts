import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentCommands } from '../helpers/agent-commands.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { BOOTC_TOOLS, BootcSandbox, REGISTRY_PASSWORD, TPM_TOOLS } from '../helpers/bootc-registry.ts';
import { makeConfigDrive, partitionTable, probe, rescan, testKeys, withMounted } from '../helpers/bootc-layout.ts';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { Swtpm, testPassphrase } from '../helpers/swtpm.ts';

const canRun = prerequisite('root, podman, docker-registry, skopeo, cryptsetup, systemd-cryptenroll, swtpm, tpm2-tools, genisoimage',
  isRoot && [...BOOTC_TOOLS, ...TPM_TOOLS, '/usr/bin/genisoimage'].every(hasTool));

const TOKEN = 'bootc-luks-token-0123456789abcdefghijklmnop';
const GiB = 2 ** 30;

describe.skipIf(!canRun)('execute_bootc_install with bootc_tpm2_luks: root sealed to a (software) TPM', () => {
  let tpm: Swtpm;
  let sb: BootcSandbox;
  let disk: LoopDevice;
  let agent: AgentProcess;
  let image: string;
  let workDir: string;

  beforeAll(async () => {
    tpm = await Swtpm.start();
    // bootc runs `systemd-cryptenroll --tpm2-device=auto`; systemd finds the swtpm through this.
    sb = await BootcSandbox.create({ containerEnv: { SYSTEMD_TPM2_DEVICE: tpm.tcti } });
    image = sb.publish('fake-bootc', { withBootc: true });
    disk = await LoopDevice.create(4 * GiB);
    workDir = sb.agentWorkDir;
    agent = await AgentProcess.start({
      cmdline: `ipa-agent-token=${TOKEN}`,
      flags: ['--allow-device', disk.path, '--bootc-work-dir', workDir],
      env: sb.env,
    });
    await agent.waitForMessage('agent API listening');
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await disk?.destroy();
    await sb?.destroy();
    tpm?.stop();
  });

  test('LUKS2 root with a TPM2 token that unseals, a config drive that still fits, and a PCR change that locks it', async () => {
    const api = agentCommands(`http://127.0.0.1:${agent.port}`, TOKEN);
    const started = await api.post('standby.execute_bootc_install', {
      image_source: `oci://${image}`, pull_secret: sb.pullSecret(), configdrive: makeConfigDrive('n-luks'),
      instance_info: { bootc_tpm2_luks: 'true', bootc_authorized_keys: testKeys() },
    });
    const s = await api.finished(started.body.id);
    expect(s.command_error, JSON.stringify(s.command_error)).toBeNull();

    // bootc's LUKS layout has a 510 MiB /boot; the agent leaves room for it, so root is exactly
    // what was asked and the config drive still fits at the end (IPA's sizing loses it, spec/bootc.md §4.3).
    const table = partitionTable(disk.path);
    expect(table.slice(0, 4).map((p) => [p.name, p.size / 2048])).toEqual([
      ['BIOS-BOOT', 1], ['EFI-SYSTEM', 512], ['boot', 510], ['root', 4096 - 768 - 510],
    ]);
    expect(table).toHaveLength(5);
    rescan(disk.path);
    expect(probe(disk.partition(5))).toMatchObject({ LABEL: 'config-2' });
    expect(probe(disk.partition(3))).toMatchObject({ TYPE: 'ext4', LABEL: 'boot' });
    const root = disk.partition(4);
    expect(probe(root)).toMatchObject({ TYPE: 'crypto_LUKS', VERSION: '2' });

    // The header: one keyslot, bound to a systemd-tpm2 token on PCR 7; no recovery key remains.
    const meta = JSON.parse(execFileSync('cryptsetup', ['luksDump', '--dump-json-metadata', root], { encoding: 'utf8' })) as {
      keyslots: Record<string, unknown>; tokens: Record<string, { type: string; keyslots: string[]; 'tpm2-pcrs': number[] }>;
    };
    expect(Object.keys(meta.keyslots)).toHaveLength(1);
    const tokens = Object.values(meta.tokens);
    expect(tokens).toEqual([expect.objectContaining({ type: 'systemd-tpm2', 'tpm2-pcrs': [7], keyslots: Object.keys(meta.keyslots) })]);

    // The kernel arguments bootc wrote tell the initramfs to unlock with the TPM.
    const boot = withMounted(disk.partition(3), (dir) => ({
      entry: readFileSync(join(dir, 'loader/entries/ostree-1.conf'), 'utf8'),
      env: readFileSync(join(dir, '.fake-bootc/env'), 'utf8'),
    }));
    const luksUuid = probe(root).UUID;
    expect(boot.entry).toMatch(new RegExp(`^options luks\\.uuid=${luksUuid} luks\\.options=tpm2-device=auto,headless=true root=UUID=\\S+ rw boot=UUID=\\S+ console=`, 'm'));
    expect(boot.env).not.toContain(TOKEN);
    for (const secret of [REGISTRY_PASSWORD, sb.pullSecret()]) expect(boot.env).not.toContain(secret);

    // The TPM really unlocks it: unseal the token's key (user space, no device-mapper here) and open the header with it.
    const passphrase = tpm.unsealLuksToken(root);
    expect(testPassphrase(root, passphrase)).toBe(true);
    expect(testPassphrase(root, `${passphrase}x`)).toBe(false);
    // A different boot chain (PCR 7 extended) can no longer unseal it.
    tpm.extendPcr7();
    expect(() => tpm.unsealLuksToken(root)).toThrow(/policy check failed|0x99D/i);
    expect(readdirSync(workDir)).toEqual([]);
  });
});
