import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { installedDeployment, makeConfigDrive, partitionTable, probe, rescan, testKeys, withMounted } from '../helpers/bootc-layout.ts';
import { BOOTC_TOOLS, BootcSandbox, REGISTRY_PASSWORD, TPM_TOOLS } from '../helpers/bootc-registry.ts';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { Swtpm, testPassphrase } from '../helpers/swtpm.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';

const canRun = prerequisite('Ironic (python3-ironic), root for loop devices, podman, docker-registry, skopeo, cryptsetup, swtpm, tpm2-tools, genisoimage',
  existsSync(IRONIC_BIN) && isRoot && [...BOOTC_TOOLS, ...TPM_TOOLS, '/usr/bin/genisoimage'].every(hasTool));
const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1', '--no-enable-auto-tls'];

/**
 * Ironic 21.4 has no `bootc` deploy interface yet: custom-agent with a user deploy step drives
 * the same agent step, with the arguments and instance_info fields Ironic's bootc interface
 * sends (spec §7.7).
 */
describe.skipIf(!canRun)('a bootc deploy driven by an unmodified Ironic (custom-agent + execute_bootc_install)', () => {
  let ironic: Ironic;
  let tpm: Swtpm;
  let sb: BootcSandbox;
  let agent: AgentProcess;
  let disk: LoopDevice;
  let uuid: string;
  let image: string;
  let workDir: string;
  const keys = testKeys();

  beforeAll(async () => {
    tpm = await Swtpm.start();
    sb = await BootcSandbox.create({ containerEnv: { SYSTEMD_TPM2_DEVICE: tpm.tcti } });
    image = sb.publish('fake-bootc', { withBootc: true });
    disk = await LoopDevice.create(2 * 2 ** 30);
    workDir = sb.agentWorkDir;
    ironic = await Ironic.start({ automatedClean: false });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    uuid = await ironic.enroll({ macs, deployInterface: 'custom-agent', properties: { root_device: { name: disk.path } } });
    await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: { bootc_authorized_keys: keys, bootc_tpm2_luks: false } }]);
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
      flags: [...FAST, '--allow-device', disk.path, '--bootc-work-dir', workDir],
      env: sb.env,
    });
    await agent.waitForMessage('agent API listening');
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
    await ironic.provision(uuid, 'provide');
  });

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await disk?.destroy();
    await sb?.destroy();
    tpm?.stop();
  });

  test('the node reaches active with bootc\'s layout, the authorized keys and a config drive on the disk', async () => {
    const deploySteps = [{
      interface: 'deploy', step: 'execute_bootc_install', priority: 80,
      args: { image_source: `oci://${image}`, oci_pull_secret: sb.pullSecret(), configdrive: makeConfigDrive(uuid) },
    }];
    await ironic.provision(uuid, 'active', { wait: null, deploySteps });
    const active = await ironic.waitState(uuid, 'active', 240);
    expect(active.last_error).toBeNull();
    const ran = agent.lines.filter((l) => l.msg === 'executing command').map((l) => String(l.command));
    expect(ran).toContain('deploy.execute_deploy_step');

    const table = partitionTable(disk.path);
    expect(table.map((p) => p.name ?? '')).toEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'root', expect.any(String)]);
    expect(table[2]!.size / 2048).toBe(2048 - 768);
    rescan(disk.path);
    expect(probe(disk.partition(3))).toMatchObject({ TYPE: 'ext4', LABEL: 'root' });
    expect(probe(disk.partition(4))).toMatchObject({ LABEL: 'config-2' });
    const installed = withMounted(disk.partition(3), (root) => installedDeployment(root));
    expect(installed.authorizedKeys).toBe(keys);
    expect(installed.kargs).toMatch(/^root=UUID=\S+ rw console=ttyS0,115200n8 selinux=0 /);

    // The pull secret left no file behind and no trace in the agent's log.
    expect(readdirSync(workDir)).toEqual([]);
    const log = agent.lines.map((l) => JSON.stringify(l)).join('\n');
    expect(log).not.toContain(REGISTRY_PASSWORD);
    expect(log).not.toContain(sb.pullSecret());
    expect(log).not.toContain(Buffer.from(sb.pullSecret(), 'base64').toString());
  });

  test('redeployed with bootc_tpm2_luks: root is LUKS2 with a TPM2 token that unseals against the swtpm, not after a PCR change', async () => {
    const after = await ironic.provision(uuid, 'deleted');
    expect(after?.provision_state).toBe('available');
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'heartbeat after the reboot');
    await ironic.patch(uuid, [{ op: 'replace', path: '/instance_info', value: { bootc_authorized_keys: keys, bootc_tpm2_luks: true } }]);
    const deploySteps = [{
      interface: 'deploy', step: 'execute_bootc_install', priority: 80,
      args: { image_source: `oci://${image}`, oci_pull_secret: sb.pullSecret(), configdrive: makeConfigDrive(uuid) },
    }];
    await ironic.provision(uuid, 'active', { wait: null, deploySteps });
    const active = await ironic.waitState(uuid, 'active', 240);
    expect(active.last_error).toBeNull();

    const table = partitionTable(disk.path);
    expect(table.map((p) => [p.name ?? '', p.size / 2048])).toEqual([
      ['BIOS-BOOT', 1], ['EFI-SYSTEM', 512], ['boot', 510], ['root', 2048 - 768 - 510], [expect.any(String), expect.any(Number)],
    ]);
    rescan(disk.path);
    expect(probe(disk.partition(5))).toMatchObject({ LABEL: 'config-2' });
    const root = disk.partition(4);
    expect(probe(root)).toMatchObject({ TYPE: 'crypto_LUKS', VERSION: '2' });
    expect(testPassphrase(root, tpm.unsealLuksToken(root))).toBe(true);
    tpm.extendPcr7();
    expect(() => tpm.unsealLuksToken(root)).toThrow(/policy check failed|0x99D/i);
    expect(readdirSync(workDir)).toEqual([]);
  });
});
