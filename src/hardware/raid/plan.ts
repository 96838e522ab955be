import { softwareRaidError } from '../../errors.ts';
import type { BlockDevice } from '../block-devices.ts';
import { partitionPath } from '../partition-layout.ts';
import { InvalidHintsError, findDevicesByHints, parseRootDeviceHints } from '../root-device-hints.ts';
import type { LogicalDisk } from './config.ts';

/**
 * Where the md member partitions go (IPA's raid_utils): every member disk gets a fresh
 * partition table, then one partition per logical disk, in the order of the config with the
 * `MAX` disk last, and one md array per logical disk over the partitions of the same index.
 * Everything here is decided before the first write and is pure, so it is tested as data.
 */

/** IPA's ESP_SIZE_MIB: the gap left in front of the members for the ESPs install_bootloader adds. */
export const ESP_SIZE_MIB = 550;

export type BootMode = 'uefi' | 'bios';
export type TableType = 'gpt' | 'msdos';

/** A logical disk with the disks it spans (IPA's `block_devices`). */
export type PlacedLogicalDisk = LogicalDisk & { devices: string[] };

/**
 * IPA's get_block_devices_for_raid: a logical disk with `physical_disks` takes, for each hint,
 * the first matching disk not taken by an earlier hint of the same logical disk; without
 * hints it spans every disk. Returns the member disks in first-use order.
 */
export function placeLogicalDisks(devices: readonly BlockDevice[], logicalDisks: readonly LogicalDisk[]): { disks: string[]; placed: PlacedLogicalDisk[] } {
  const disks: string[] = [];
  const placed: PlacedLogicalDisk[] = [];
  for (const ld of logicalDisks) {
    let matching: string[];
    if (Array.isArray(ld.physical_disks) && ld.physical_disks.length > 0) {
      matching = [];
      for (const hint of ld.physical_disks) {
        const candidates = matchHint(devices, hint).map((d) => d.name);
        if (candidates.length === 0) {
          throw softwareRaidError(`No candidates for physical disk ${JSON.stringify(hint)} from the list ${devices.map((d) => d.name).join(', ')}`);
        }
        const pick = candidates.find((c) => !matching.includes(c));
        if (pick === undefined) {
          throw softwareRaidError(
            `No candidates left for physical disk ${JSON.stringify(hint)} from the list ${candidates.join(', ')} after picking ${matching.join(', ')} for previous volumes`,
          );
        }
        matching.push(pick);
      }
    } else {
      matching = devices.map((d) => d.name);
    }
    for (const d of matching) if (!disks.includes(d)) disks.push(d);
    placed.push({ ...ld, devices: matching });
  }
  return { disks, placed };
}

function matchHint(devices: readonly BlockDevice[], raw: unknown): BlockDevice[] {
  try {
    const hints = parseRootDeviceHints(raw);
    return hints ? findDevicesByHints(devices, hints) : [...devices];
  } catch (err) {
    if (err instanceof InvalidHintsError) throw softwareRaidError(`Invalid physical_disks hints ${JSON.stringify(raw)}: ${err.message}`);
    throw err;
  }
}

/**
 * IPA's calculate_raid_start: room for a 550 MiB ESP under UEFI, 8 MiB for the BIOS boot
 * partition grub needs on gpt (no MBR gap there), and on msdos the first usable sector
 * (`sgdisk -F`, read after the table is written, as `firstUsableSector`).
 */
export function raidStart(bootMode: BootMode, tableType: TableType, firstUsableSector?: number): string {
  if (bootMode === 'uefi') return `${ESP_SIZE_MIB + 1}MiB`;
  if (tableType === 'gpt') return '8MiB';
  if (firstUsableSector === undefined) throw new Error('the first usable sector of an msdos disk comes from sgdisk -F');
  return `${firstUsableSector}s`;
}

/** The last line of `sgdisk -F <disk>` is the first usable sector (earlier lines may be warnings about the MBR). */
export function parseFirstUsableSector(stdout: string): number {
  const last = stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (!/^\d+$/.test(last)) throw softwareRaidError(`unexpected output of sgdisk -F: ${JSON.stringify(stdout.trim())}`);
  return Number(last);
}

/**
 * IPA's calc_raid_partition_sectors, in parted units. The first partition runs from the gap
 * to `size_gb` GiB from the start of the disk (a little under size_gb, as in IPA); each next
 * one starts where the previous ended, in whole GiB. `MAX` (-1) runs to the end of the disk.
 */
export function partitionBounds(sizeGb: number | 'MAX', start: string | number): { start: string; end: string; next: number | undefined } {
  const startStr = typeof start === 'number' ? `${start}GiB` : start;
  if (sizeGb === 'MAX') return { start: startStr, end: '-1', next: undefined };
  const end = typeof start === 'number' ? start + sizeGb : sizeGb;
  return { start: startStr, end: `${end}GiB`, next: end };
}

export interface PlannedPartition {
  disk: string;
  number: number;
  path: string;
  start: string;
  end: string;
}

export interface PlannedArray {
  /** `/dev/md<N>`, as IPA names them. */
  md: string;
  /** mdadm's level: `1+0` is `10`. */
  level: string;
  /** `--name`: the volume_name, `md<N>` without one (IPA). */
  name: string;
  members: PlannedPartition[];
  logicalDisk: PlacedLogicalDisk;
}

export interface RaidPlan {
  tableType: TableType;
  bootMode: BootMode;
  disks: string[];
  /** Partitions in the order they are created (per logical disk, per member disk). */
  partitions: PlannedPartition[];
  arrays: PlannedArray[];
}

/** The `MAX` logical disk goes last, so the fixed-size ones get their space first (IPA). */
export function maxLast<T extends { size_gb: number | 'MAX' }>(disks: readonly T[]): T[] {
  return [...disks.filter((d) => d.size_gb !== 'MAX'), ...disks.filter((d) => d.size_gb === 'MAX')];
}

/**
 * The whole layout: partitions and arrays. `starts` is raidStart() per member disk. md
 * numbers follow the creation order as in IPA, skipping names already taken (an array kept
 * by the skip list), which IPA would collide with.
 */
export function planRaid(input: {
  placed: readonly PlacedLogicalDisk[];
  disks: readonly string[];
  starts: Readonly<Record<string, string>>;
  bootMode: BootMode;
  tableType: TableType;
  existingMd?: readonly string[];
}): RaidPlan {
  const cursor: Record<string, string | number | undefined> = { ...input.starts };
  const used: Record<string, number> = {};
  const partitions: PlannedPartition[] = [];
  const arrays: PlannedArray[] = [];
  const taken = new Set(input.existingMd ?? []);
  let mdIndex = 0;
  maxLast(input.placed).forEach((ld) => {
    const md = firstFreeMd(taken, mdIndex);
    mdIndex = Number(md.slice('/dev/md'.length));
    const members: PlannedPartition[] = [];
    for (const disk of ld.devices) {
      const at = cursor[disk];
      if (at === undefined) throw softwareRaidError(`no space left on ${disk} after a logical disk of size MAX`);
      const bounds = partitionBounds(ld.size_gb, at);
      const number = (used[disk] ?? 0) + 1;
      used[disk] = number;
      cursor[disk] = bounds.next;
      const part = { disk, number, path: partitionPath(disk, number), start: bounds.start, end: bounds.end };
      members.push(part);
      partitions.push(part);
    }
    arrays.push({ md, level: ld.raid_level === '1+0' ? '10' : ld.raid_level, name: ld.volume_name ?? `md${mdIndex}`, members, logicalDisk: ld });
    mdIndex++;
  });
  return { tableType: input.tableType, bootMode: input.bootMode, disks: [...input.disks], partitions, arrays };
}

/**
 * The first `/dev/md<N>` from `from` on that is not taken (IPA's get_next_free_raid_device
 * takes the lowest md name no block device has).
 */
export function firstFreeMd(taken: ReadonlySet<string>, from = 0): string {
  let n = from;
  while (taken.has(`/dev/md${n}`)) n++;
  return `/dev/md${n}`;
}

/** The number of a partition from its kernel name (`sda2`, `nvme0n1p2`, `loop0p2`); undefined for a whole disk name. */
export function partitionNumberOf(path: string): string | undefined {
  // Disks whose name ends in a digit (nvme0n1, loop0, mmcblk0) number partitions after a "p".
  return /\dp(\d+)$/.exec(path)?.[1] ?? /^\/dev\/(?:sd|vd|hd|xvd)[a-z]+(\d+)$/.exec(path)?.[1];
}

/** IPA's create_partition_table. */
export function mklabelArgs(disk: string, tableType: TableType): string[] {
  return [disk, '-s', '--', 'mklabel', tableType];
}

/** IPA's member partition: `primary` is the type on msdos and the name on gpt. */
export function mkpartArgs(part: Pick<PlannedPartition, 'disk' | 'start' | 'end'>): string[] {
  return [part.disk, '-s', '-a', 'optimal', '--', 'mkpart', 'primary', part.start, part.end];
}

/** IPA's create_raid_device: metadata 1.x (1.2: superblock near the start), forced, started at once. */
export function mdadmCreateArgs(array: Pick<PlannedArray, 'md' | 'level' | 'name' | 'members'>): string[] {
  const components = array.members.map((m) => m.path);
  return ['--create', array.md, '--force', '--run', '--metadata=1', '--level', array.level, '--name', array.name, '--raid-devices', String(components.length), ...components];
}
