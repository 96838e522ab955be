import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { layoutEverything, readAt, signatures, writeAt } from '../helpers/disk-layouts.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';

const canRun = prerequisite('Ironic (apt-get install python3-ironic ironic-common)', existsSync(IRONIC_BIN)) && prerequisite('root (loop devices)', isRoot);
const MiB = 1024 * 1024;
const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1', '--no-enable-auto-tls'];

/**
 * Automated cleaning runs metadata erasure only: the conductor's [deploy]erase_devices_priority
 * is 0, as TripleO and metal3 configure it (spec §13), so that what the test proves clean was
 * cleaned by erase_devices_metadata and not hidden by a later full overwrite. The full erase
 * (erase_devices) is exercised by a manual clean below. The metadata step keeps the
 * priority the agent reports (99); the harness turns both off for every other test.
 */
const METADATA_ONLY = '[deploy]\nerase_devices_priority = 0\nerase_devices_metadata_priority = 99\n';

function devicesOf(disk: LoopDevice, parts: number): string[] {
  return [disk.path, ...Array.from({ length: parts }, (_, i) => disk.partition(i + 1))];
}

describe.skipIf(!canRun)('Ironic cleans the node through the agent (automated and manual cleaning, fast track)', () => {
  let ironic: Ironic;
  let agent: AgentProcess;
  let gptDisk: LoopDevice;
  let mbrDisk: LoopDevice;
  let uuid: string;

  const stepsRun = () => agent.lines.filter((l) => l.kind === 'clean' && typeof l.step === 'string' && l.msg.startsWith('running clean step')).map((l) => l.step as string);
  /** clean failed keeps target_provision_state = manageable, so the harness's waitState does not fit. */
  const cleanExpectingFailure = async (step: string) => {
    await ironic.provision(uuid, 'clean', { cleanSteps: [{ interface: 'deploy', step }], wait: null });
    return ironic.waitFor(uuid, (n) => n.provision_state === 'clean failed', 240, 'clean failed');
  };

  beforeAll(async () => {
    gptDisk = await LoopDevice.create(64 * MiB);
    layoutEverything(gptDisk);
    mbrDisk = await LoopDevice.create(32 * MiB);
    sh('sfdisk', ['--quiet', mbrDisk.path], 'label: dos\n,16M,83\n');
    mbrDisk.scanPartitions();
    sh('mkfs.ext4', ['-q', '-F', mbrDisk.partition(1)]);

    ironic = await Ironic.start({ automatedClean: true, fastTrack: true, extraConf: METADATA_ONLY });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    uuid = await ironic.enroll({ macs, deployInterface: 'direct' });
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
      flags: [...FAST, '--allow-device', gptDisk.path, '--allow-device', mbrDisk.path],
    });
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
  });

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await gptDisk?.destroy();
    await mbrDisk?.destroy();
  });

  test('provide: manageable -> cleaning -> available; no signature left, backup GPT included', async () => {
    expect(signatures(gptDisk.path)).toEqual(expect.arrayContaining(['PTTYPE=gpt', 'wipefs:gpt', 'wipefs:PMBR']));
    const node = await ironic.provision(uuid, 'provide', { timeoutSeconds: 240 });
    expect(node?.provision_state).toBe('available');
    expect(node?.last_error).toBeNull();
    expect(stepsRun()).toEqual(['erase_devices_metadata']);
    for (const device of [...devicesOf(gptDisk, 5), ...devicesOf(mbrDisk, 1)]) expect(signatures(device), device).toEqual([]);
    expect(readAt(gptDisk.path, 64 * MiB - 33 * 512, 33 * 512).every((b) => b === 0)).toBe(true);
    expect(readAt(gptDisk.path, 0, 34 * 512).every((b) => b === 0)).toBe(true);
    const report = agent.lines.filter((l) => l.msg === 'disk metadata destroyed').map((l) => l.device);
    expect(report).toEqual(expect.arrayContaining([...devicesOf(gptDisk, 5), ...devicesOf(mbrDisk, 1)]));
  });

  test('manual clean with erase_devices overwrites every allowlisted disk (shred: no ATA/NVMe on loop devices)', async () => {
    await ironic.provision(uuid, 'manage');
    for (const d of [gptDisk, mbrDisk]) writeAt(d.path, 8 * MiB, Buffer.alloc(MiB, 0x5a));
    const node = await ironic.provision(uuid, 'clean', { cleanSteps: [{ interface: 'deploy', step: 'erase_devices' }], timeoutSeconds: 240 });
    expect(node?.provision_state).toBe('manageable');
    expect(node?.last_error).toBeNull();
    for (const d of [gptDisk, mbrDisk]) expect(readAt(d.path, 8 * MiB, MiB).every((b) => b === 0)).toBe(true);
    const reports = agent.lines.filter((l) => l.msg === 'device erased').map((l) => l.report as Record<string, any>);
    expect(reports.map((r) => [r.device, r.method, r.read_back.all_zero]).sort()).toEqual([[gptDisk.path, 'shred', true], [mbrDisk.path, 'shred', true]].sort());
  });

  test('manual clean with erase_devices_express is the metadata wipe on loop devices', async () => {
    sh('sfdisk', ['--quiet', mbrDisk.path], 'label: gpt\n,8M\n');
    const node = await ironic.provision(uuid, 'clean', { cleanSteps: [{ interface: 'deploy', step: 'erase_devices_express' }], timeoutSeconds: 240 });
    expect(node?.provision_state).toBe('manageable');
    expect(signatures(mbrDisk.path)).toEqual([]);
  });

  test('a failing step puts the node in clean failed with the agent\'s message: read-only disk, protected filesystem', async () => {
    sh('blockdev', ['--setro', mbrDisk.path]);
    try {
      const failed = await cleanExpectingFailure('erase_devices');
      expect(failed.last_error).toContain(`Failed to invoke erase of device ${mbrDisk.path} as the device is flagged read-only`);
    } finally {
      sh('blockdev', ['--setrw', mbrDisk.path]);
    }
    // A failed clean also sets maintenance (fault "clean failure"); the operator clears it.
    expect((await ironic.node(uuid)).maintenance).toBe(true);
    await ironic.api('DELETE', `/v1/nodes/${uuid}/maintenance`);
    await ironic.provision(uuid, 'manage');

    sh('sfdisk', ['--quiet', gptDisk.path], 'label: gpt\n,8M,37AFFC90-EF7D-4E96-91C3-2D7AE055B174\n');
    const protectedNode = await cleanExpectingFailure('erase_devices_express');
    expect(protectedNode.last_error).toContain(`Protected IBM GPFS Partition located on device ${gptDisk.path}`);
    // Nothing was touched: the table that made the device protected is still there.
    expect(signatures(gptDisk.path)).toContain('PTTYPE=gpt');
  });
});
