import { realpath } from 'node:fs/promises';
import type { AgentContext } from '../../agent-context.ts';
import type { NodeDict } from '../../steps/types.ts';
import { listDisks, type BlockDevice } from '../block-devices.ts';
import { holdersOf, isReadOnly, kernelPartitions } from '../partitions.ts';
import { withoutSkipped } from '../root-device.ts';

/** IPA's label for the virtual-media parameters device, never erased (spec §11.1 step 1). */
const VIRTUAL_MEDIA_LABEL = '/dev/disk/by-label/ir-vfd-dev';

/**
 * The disks an erase step may consider: the machine's disks minus `skip_block_devices`,
 * and with an allowlist only allowlisted disks (loop devices count then): erasing is the
 * one operation where a wrong disk cannot be undone.
 */
export async function eraseCandidates(ctx: AgentContext, node: NodeDict | undefined): Promise<BlockDevice[]> {
  const restricted = ctx.diskGuard.allowlist.length > 0;
  let disks = await listDisks({ run: ctx.run }, { includeLoop: restricted });
  if (restricted) {
    const allowed = await Promise.all(disks.map((d) => ctx.diskGuard.allowed(d.name)));
    disks = disks.filter((_, i) => allowed[i]);
  }
  return withoutSkipped(disks, node);
}

export interface EraseTarget {
  name: string;
  /** The disk this target is, or belongs to. */
  disk: string;
  partition: boolean;
}

/** Disks and their partitions, in reverse name order so partitions go before their disk (spec §11.2). */
export async function withPartitions(disks: readonly BlockDevice[]): Promise<EraseTarget[]> {
  const targets: EraseTarget[] = [];
  for (const disk of disks) {
    targets.push({ name: disk.name, disk: disk.name, partition: false });
    for (const p of await kernelPartitions(disk.name)) targets.push({ name: p.name, disk: disk.name, partition: true });
  }
  return targets.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}

/** Why IPA leaves this device alone, if it does: virtual media or an md member (spec §11.1 steps 1-2). */
export async function skipReason(device: string): Promise<string | undefined> {
  const vmedia = await realpath(VIRTUAL_MEDIA_LABEL).catch(() => undefined);
  if (vmedia !== undefined && vmedia === device) return 'virtual media device';
  // IPA asks `lsblk --fs` for linux_raid_member, which without udev reports nothing. A
  // member of an assembled array has the md device as holder; a disk carrying only stale
  // md metadata (no array) is not in use, and its metadata is erased like any other.
  const held = [...(await holdersOf(device)), ...(await partitionHolders(device))];
  if (held.some((h) => /^\/dev\/md/.test(h))) return `member of the software RAID ${held.join(', ')}`;
  return undefined;
}

async function partitionHolders(device: string): Promise<string[]> {
  const all: string[] = [];
  for (const p of await kernelPartitions(device)) all.push(...(await holdersOf(p.name)));
  return all;
}

export { isReadOnly };
