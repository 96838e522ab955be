/**
 * IPA's _handle_raid_skip_list: what delete_configuration does with each md array when
 * `skip_block_devices` names volumes to keep. An array on the list is kept; another array
 * sharing a holder disk with it cannot lose its partitions, so it is only wiped (its data
 * signatures, not its superblock); the others are deleted. An `esp` array that would be
 * wiped is kept instead, so install_bootloader finds the RAIDed ESP again.
 */
export type RaidAction = 'delete' | 'wipe' | 'keep';

export interface ExistingArray {
  device: string;
  volumeName: string | null;
  holderDisks: readonly string[];
}

export interface RaidDecisions {
  actions: Record<string, RaidAction>;
  volumeNames: Record<string, string | null>;
  /** For wiped or kept arrays: the kept volume that shares a disk with them. */
  causes: Record<string, string>;
}

export function decideRaidActions(arrays: readonly ExistingArray[], skipList: ReadonlySet<string> | undefined): RaidDecisions {
  const actions: Record<string, RaidAction> = {};
  const volumeNames: Record<string, string | null> = {};
  const causes: Record<string, string> = {};
  const onDisk = new Map<string, string[]>();
  let esp: string | undefined;
  for (const a of arrays) {
    actions[a.device] = 'delete';
    volumeNames[a.device] = a.volumeName;
    if (a.volumeName === 'esp') esp = a.device;
    for (const disk of a.holderDisks) onDisk.set(disk, [...(onDisk.get(disk) ?? []), a.device]);
  }
  if (!skipList) return { actions, volumeNames, causes };
  for (const a of arrays) {
    if (a.volumeName === null || !skipList.has(a.volumeName)) continue;
    actions[a.device] = 'keep';
    for (const disk of a.holderDisks) {
      for (const neighbour of onDisk.get(disk) ?? []) {
        if (neighbour !== a.device && actions[neighbour] === 'delete') {
          actions[neighbour] = 'wipe';
          causes[neighbour] = a.volumeName;
        }
      }
    }
  }
  if (esp !== undefined && actions[esp] === 'wipe') actions[esp] = 'keep';
  return { actions, volumeNames, causes };
}

/**
 * IPA's _create_raid_ignore_list, for create_configuration with a skip list: logical disks
 * whose volume already exists and is kept are not created again; any other array that
 * survived the delete (no volume name, or one not asked for) makes the creation fail.
 */
export function logicalDisksToSkip<T extends { volume_name?: string | null | undefined }>(
  logicalDisks: readonly T[],
  decisions: RaidDecisions,
  skipList: ReadonlySet<string>,
): { skip: T[]; problem?: string } {
  const present = Object.values(decisions.volumeNames);
  if (present.some((v) => v === null || v === '')) {
    return { skip: [], problem: "A Software RAID device detected that does not have a volume name. This is not allowed because there is a volume_name hint in the property 'skip_block_devices'." };
  }
  const remaining = [...present] as string[];
  const skip: T[] = [];
  for (const ld of logicalDisks) {
    const name = ld.volume_name ?? undefined;
    if (name === undefined || !remaining.includes(name)) continue;
    if (!skipList.has(name)) {
      const device = Object.keys(decisions.volumeNames).find((d) => decisions.volumeNames[d] === name)!;
      if (decisions.actions[device] !== 'wipe' || decisions.causes[device] === undefined) {
        return { skip: [], problem: 'Existing Software RAID device detected that should not' };
      }
    }
    remaining.splice(remaining.indexOf(name), 1);
    skip.push(ld);
  }
  const espIndex = remaining.indexOf('esp');
  if (espIndex >= 0) {
    const device = Object.keys(decisions.volumeNames).find((d) => decisions.volumeNames[d] === 'esp')!;
    if (decisions.actions[device] === 'keep') remaining.splice(espIndex, 1);
  }
  if (remaining.length > 0) return { skip: [], problem: 'Existing Software RAID device detected that should not' };
  return { skip };
}
