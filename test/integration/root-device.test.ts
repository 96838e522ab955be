import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AgentContext } from '../../src/agent-context.ts';
import { ConductorState } from '../../src/conductor/state.ts';
import { listDisks } from '../../src/hardware/block-devices.ts';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { selectRootDevice } from '../../src/hardware/root-device.ts';
import { runCommand } from '../../src/run.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { memoryLogger } from '../helpers/logger.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root (loop devices)', isRoot);

function context(allow: string[], node: Record<string, unknown>): AgentContext {
  const conductor = new ConductorState();
  conductor.node = { uuid: 'n', ...node };
  return {
    run: runCommand, log: memoryLogger().log, conductor, diskGuard: new DiskGuard({ allowDevices: allow }),
    refreshNode: async () => undefined,
  } as unknown as AgentContext;
}

describe.skipIf(!canRun)('root device selection on this machine (real lsblk, loop devices)', () => {
  let small: LoopDevice;
  let big: LoopDevice;
  beforeAll(async () => {
    small = await LoopDevice.create(5 * 2 ** 30);
    big = await LoopDevice.create(6 * 2 ** 30);
  });
  afterAll(async () => {
    await small?.destroy();
    await big?.destroy();
  });

  test('lsblk lists loop devices only when asked, with their size', async () => {
    const without = await listDisks({ run: runCommand });
    expect(without.map((d) => d.name)).not.toContain(small.path);
    const withLoop = await listDisks({ run: runCommand }, { includeLoop: true });
    expect(withLoop.find((d) => d.name === small.path)?.size).toBe(5 * 2 ** 30);
  });

  test('with an allowlist, only allowlisted disks are candidates; the smallest >= 4 GiB wins', async () => {
    expect((await selectRootDevice(context([small.path, big.path], {}))).name).toBe(small.path);
    expect((await selectRootDevice(context([big.path], {}))).name).toBe(big.path);
  });

  test('hints from instance_info win over properties', async () => {
    const ctx = context([small.path, big.path], {
      properties: { root_device: { name: small.path } },
      instance_info: { root_device: { size: '>= 6' } },
    });
    expect((await selectRootDevice(ctx)).name).toBe(big.path);
  });

  test('a hint naming a disk outside the allowlist finds nothing', async () => {
    await expect(selectRootDevice(context([small.path], { properties: { root_device: { name: big.path } } }))).rejects.toThrow(/No suitable device/);
  });
});
