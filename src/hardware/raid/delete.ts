import { access } from 'node:fs/promises';
import type { AgentContext } from '../../agent-context.ts';
import { softwareRaidError } from '../../errors.ts';
import type { NodeDict } from '../../steps/types.ts';
import { raidSkipList } from './config.ts';
import { examineAll, findArrays, raidCandidateDisks, raidTargets, type FoundArray } from './discover.ts';
import { MDADM_ENV, examine } from './mdadm.ts';
import { partitionNumberOf } from './plan.ts';
import { decideRaidActions, type RaidAction } from './skip-list.ts';

export interface DeleteOptions {
  procRoot?: string;
}

/** IPA's own retry: a second pass catches arrays that `mdadm --assemble --scan` brought back. */
const DELETE_PASSES = 2;

/**
 * delete_configuration (spec §11.5): every md array goes (wiped, stopped, its members'
 * superblocks zeroed, its disks' partition tables wiped) except those whose volume name is
 * on the skip list and their neighbours. Stale md superblocks on any candidate disk or
 * partition are zeroed too, which needs no md driver. Returns the decision per array.
 */
export async function deleteConfiguration(ctx: AgentContext, node: NodeDict | undefined, opts: DeleteOptions = {}): Promise<Record<string, RaidAction>> {
  const skipList = raidSkipList(node);
  let last: Record<string, RaidAction> = {};
  for (let pass = 1; pass <= DELETE_PASSES; pass++) {
    await assembleScan(ctx, opts);
    last = await deletePass(ctx, node, skipList, opts);
    await assembleScan(ctx, opts);
    const disks = await raidCandidateDisks(ctx, node);
    const targets = await raidTargets(disks);
    let remaining = await findArrays(ctx, targets, await examineAll(ctx, targets), opts.procRoot);
    if (skipList) remaining = remaining.filter((a) => (last[a.device] ?? 'delete') === 'delete');
    if (remaining.length === 0) return last;
    if (pass === DELETE_PASSES) {
      throw softwareRaidError(`Unable to clean all softraid correctly. Remaining ${JSON.stringify(remaining.map((a) => a.device))}`);
    }
    ctx.log.warn({ remaining: remaining.map((a) => a.device) }, 'software RAID devices remain after a delete pass; trying again');
  }
  return last;
}

/** mdadm assembles what it finds so it can be deleted; its failure ("No arrays found") is normal. */
async function assembleScan(ctx: AgentContext, opts: DeleteOptions): Promise<void> {
  const hasMd = await access(`${opts.procRoot ?? '/proc'}/mdstat`).then(() => true, () => false);
  if (hasMd) await ctx.run('mdadm', ['--assemble', '--scan'], { env: MDADM_ENV }).catch(() => undefined);
}

async function deletePass(ctx: AgentContext, node: NodeDict | undefined, skipList: Set<string> | undefined, opts: DeleteOptions): Promise<Record<string, RaidAction>> {
  const disks = await raidCandidateDisks(ctx, node);
  const targets = await raidTargets(disks);
  const examined = await examineAll(ctx, targets);
  const arrays = await findArrays(ctx, targets, examined, opts.procRoot);
  const decisions = decideRaidActions(arrays, skipList);
  const holderDisks: string[] = [];
  const keepDevices = new Set<string>();
  const deletePartitions = new Map<string, string[]>();

  for (const array of arrays) {
    if (array.components.length === 0) {
      // IPA: an md "device" without components is a partition on an md device (the config drive).
      ctx.log.info({ device: array.device }, 'software RAID cleaning skips a device without components');
      continue;
    }
    holderDisks.push(...array.holderDisks);
    const action = decisions.actions[array.device] ?? 'delete';
    if (action !== 'delete') {
      for (const c of array.components) keepDevices.add(c);
      if (action === 'wipe') {
        ctx.log.warn({ device: array.device, cause: decisions.causes[array.device] }, 'software RAID device shares a disk with a kept one: wiping its data signatures only');
        await ctx.diskGuard.check(array.device, { allowedVia: array.holderDisks });
        await ctx.run('wipefs', ['-af', array.device]).catch((err: Error) => ctx.log.warn({ device: array.device, err: err.message }, 'wipefs failed'));
      } else {
        ctx.log.warn({ device: array.device, volume: decisions.volumeNames[array.device], cause: decisions.causes[array.device] }, 'software RAID device is kept (skip_block_devices)');
      }
      continue;
    }
    await deleteArray(ctx, array, skipList !== undefined ? deletePartitions : undefined);
  }

  await sweepSuperblocks(ctx, targets, keepDevices);

  const keepDisks = new Set(targets.filter((t) => keepDevices.has(t.name)).map((t) => t.disk));
  for (const disk of [...new Set(holderDisks)]) {
    if (keepDisks.has(disk)) {
      const parts = deletePartitions.get(disk) ?? [];
      ctx.log.warn({ disk, partitions: parts }, 'disk holds a kept software RAID device: removing only the deleted arrays\' partitions');
      for (const part of parts) {
        const target = targets.find((t) => t.disk === disk && t.partition && partitionNumberOf(t.name) === part);
        if (target) await ctx.diskGuard.check(target.name);
        await ctx.run('parted', [disk, 'rm', part]);
      }
      continue;
    }
    ctx.log.info({ disk }, 'removing the partitions of a software RAID holder disk');
    await ctx.diskGuard.check(disk);
    await ctx.run('wipefs', ['-af', disk]).catch((err: Error) => ctx.log.warn({ disk, err: err.message }, 'failed to remove partitions'));
  }
  ctx.log.info({ decisions: decisions.actions }, 'finished deleting software RAID');
  return decisions.actions;
}

/** Wipe, stop, zero the members' superblocks: IPA's order, and its tolerance of each step failing. */
async function deleteArray(ctx: AgentContext, array: FoundArray, deletePartitions: Map<string, string[]> | undefined): Promise<void> {
  ctx.log.info({ device: array.device, components: array.components }, 'deleting software RAID device');
  await ctx.diskGuard.check(array.device, { allowedVia: array.holderDisks });
  await ctx.run('wipefs', ['-af', array.device]).catch((err: Error) => ctx.log.warn({ device: array.device, err: err.message }, 'wipefs failed'));
  await ctx.run('mdadm', ['--stop', array.device], { env: MDADM_ENV }).catch((err: Error) => ctx.log.warn({ device: array.device, err: err.message }, 'mdadm --stop failed'));
  for (const component of array.components) {
    let sb;
    try {
      sb = await examine(ctx.run, component);
    } catch (err) {
      throw softwareRaidError(`Failed to examine device ${component}: ${(err as Error).message}`);
    }
    if (!sb) continue;
    // Stopped, the member has no holder left: the guard judges it like any disk.
    await ctx.diskGuard.check(component);
    await ctx.run('mdadm', ['--zero-superblock', component], { env: MDADM_ENV }).catch((err: Error) => ctx.log.warn({ device: component, err: err.message }, 'failed to remove the md superblock'));
    if (deletePartitions) {
      const disk = array.holderDisks.find((d) => component.startsWith(d) && component !== d);
      const number = partitionNumberOf(component);
      if (disk && number) deletePartitions.set(disk, [...(deletePartitions.get(disk) ?? []), number]);
    }
  }
  ctx.log.info({ device: array.device }, 'deleted software RAID device');
}

/**
 * The final sweep (IPA): any candidate disk or partition still carrying an md superblock
 * loses it, partitions before their disk, except members of kept arrays and the disks they
 * are on. All are checked by the disk guard before the first is zeroed, so a refused device
 * leaves every device untouched.
 */
async function sweepSuperblocks(ctx: AgentContext, targets: Awaited<ReturnType<typeof raidTargets>>, keepDevices: ReadonlySet<string>): Promise<void> {
  const keepDisks = new Set<string>();
  const zero: string[] = [];
  for (const t of targets) {
    if (keepDevices.has(t.name)) {
      keepDisks.add(t.disk);
      continue;
    }
    if (keepDisks.has(t.name)) continue;
    let sb;
    try {
      sb = await examine(ctx.run, t.name);
    } catch (err) {
      ctx.log.warn({ device: t.name, err: (err as Error).message }, 'failed to examine device');
      continue;
    }
    if (sb) zero.push(t.name);
  }
  for (const device of zero) await ctx.diskGuard.check(device);
  for (const device of zero) {
    ctx.log.info({ device }, 'zeroing a stale md superblock');
    await ctx.run('mdadm', ['--zero-superblock', device], { env: MDADM_ENV }).catch((err: Error) => ctx.log.warn({ device, err: err.message }, 'failed to remove the md superblock'));
  }
}
