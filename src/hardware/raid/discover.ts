import type { AgentContext } from '../../agent-context.ts';
import type { NodeDict } from '../../steps/types.ts';
import type { BlockDevice } from '../block-devices.ts';
import { eraseCandidates, withPartitions, type EraseTarget } from '../erase/devices.ts';
import { detail, examine, mdArrays, type MdExamine } from './mdadm.ts';
import type { ExistingArray } from './skip-list.ts';

/**
 * The disks software RAID may use or clean: the erase candidates (skip_block_devices and
 * the allowlist honoured), without md arrays themselves, which lsblk also lists as disks.
 */
export async function raidCandidateDisks(ctx: AgentContext, node: NodeDict | undefined): Promise<BlockDevice[]> {
  return (await eraseCandidates(ctx, node)).filter((d) => !d.type.includes('raid') && d.type !== 'md' && !/^\/dev\/md/.test(d.name));
}

/** Disks and partitions, partitions before their disk (IPA sweeps them in that order). */
export async function raidTargets(disks: readonly BlockDevice[]): Promise<EraseTarget[]> {
  return withPartitions(disks);
}

export interface FoundArray extends ExistingArray {
  uuid: string | null;
  /** Disks and partitions whose md superblock names this array (IPA's get_component_devices). */
  components: string[];
}

/**
 * The superblock of every target that has one. mdadm --examine reads the device and needs
 * no md driver; a device it cannot read is logged and left out, as IPA does.
 */
export async function examineAll(ctx: AgentContext, targets: readonly EraseTarget[]): Promise<Map<string, MdExamine>> {
  const found = new Map<string, MdExamine>();
  for (const t of targets) {
    try {
      const sb = await examine(ctx.run, t.name);
      if (sb) found.set(t.name, sb);
    } catch (err) {
      ctx.log.warn({ device: t.name, err: (err as Error).message }, 'cannot examine device for md metadata');
    }
  }
  return found;
}

/**
 * The md arrays the kernel runs, each with its volume name (from --detail), its components
 * (the examined devices with the same array UUID) and their disks. Without an md driver
 * there are none.
 */
export async function findArrays(ctx: AgentContext, targets: readonly EraseTarget[], examined: ReadonlyMap<string, MdExamine>, procRoot?: string): Promise<FoundArray[]> {
  const arrays: FoundArray[] = [];
  const diskOf = new Map(targets.map((t) => [t.name, t.disk]));
  for (const md of await mdArrays(procRoot)) {
    const info = await detail(ctx.run, md.device);
    const uuid = info?.uuid ?? null;
    const components = uuid === null ? [] : [...examined].filter(([, sb]) => sb.arrayUuid === uuid).map(([device]) => device);
    const holderDisks = [...new Set(components.map((c) => diskOf.get(c) ?? c))];
    arrays.push({ device: md.device, volumeName: info?.volumeName ?? null, uuid, components, holderDisks });
  }
  return arrays;
}
