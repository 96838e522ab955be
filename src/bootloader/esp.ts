import { deviceNotFound } from '../errors.ts';
import { probeDevice, type BlkidProbe } from '../hardware/blkid.ts';
import { partitionPath } from '../hardware/partition-layout.ts';
import { kernelPartitions, readPartitionTable, type PartitionTable } from '../hardware/partitions.ts';
import type { RunCommand } from '../run.ts';

/** The EFI System Partition type GUID (UEFI spec §5.3.3). */
export const ESP_TYPE_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

export interface DiskPartition {
  path: string;
  number: number;
}

/** The number of a partition sfdisk names `/dev/loop0p3` or `/dev/sda3` on `disk`. */
export function partitionNumber(disk: string, node: string): number | undefined {
  if (!node.startsWith(disk)) return undefined;
  const m = /^p?(\d+)$/.exec(node.slice(disk.length));
  return m ? Number(m[1]) : undefined;
}

/**
 * IPA's find_efi_partition, on sfdisk's reading of the table instead of parted's flags: parted
 * shows `esp` (and on GPT also `boot`) exactly for the ESP type GUID, and `esp` on MBR for type
 * 0xef; MBR's `boot` (the active flag) does not count. The first such partition by table order.
 */
export function espNumberFromTable(disk: string, table: PartitionTable): number | undefined {
  for (const p of table.partitions) {
    const isEsp = table.label === 'gpt' ? p.type.toUpperCase() === ESP_TYPE_GUID : p.type.toLowerCase() === 'ef';
    if (isEsp) return partitionNumber(disk, p.node);
  }
  return undefined;
}

/**
 * Makes the kernel's partition list match the table on `disk` (IPA's rescan_device runs
 * `partx -av`): no udev in the ramdisk, and on this project's test kernel no partition
 * parser. `-u` fixes entries that changed, `-a` adds missing ones; either reports an error
 * when it had nothing to do, which is no error here.
 */
export async function rescanPartitions(run: RunCommand, disk: string): Promise<void> {
  await run('partx', ['-u', disk]).catch(() => undefined);
  await run('partx', ['-a', disk]).catch(() => undefined);
}

/**
 * IPA's partition_utils.get_partition: the partition of `disk` whose filesystem UUID,
 * partition UUID or label is `uuid`, read with `blkid -p` from each partition itself (no
 * udev database in the ramdisk). UUIDs compare case-insensitively (blkid prints GPT
 * PARTUUIDs in lower case, Ironic may store either); labels exactly. Unlike IPA, there is no
 * `findfs` fallback across every disk of the machine: a partition elsewhere is never the one.
 */
export async function findPartitionByUuid(run: RunCommand, disk: string, uuid: string, sysRoot?: string): Promise<(DiskPartition & { probe: BlkidProbe }) | undefined> {
  const wanted = uuid.toLowerCase();
  for (const part of await kernelPartitions(disk, sysRoot)) {
    const probe = await probeDevice(run, part.name);
    if (probe.UUID?.toLowerCase() === wanted || probe.PART_ENTRY_UUID?.toLowerCase() === wanted || probe.LABEL === uuid) {
      return { path: part.name, number: part.number, probe };
    }
  }
  return undefined;
}

export const noPartitionWithUuid = (uuid: string, disk: string) => deviceNotFound(`No partition with UUID ${uuid} found on device ${disk}`);

export const noEsp = (disk: string) =>
  deviceNotFound(
    `No EFI partition could be detected on device ${disk} and EFI partition UUID has not been recorded during deployment ` +
      '(which is often the case for whole disk images). Are you using a UEFI-compatible image?',
  );

/**
 * The ESP of `disk` as IPA's manage_uefi finds it: by partition type first ("trust the
 * contents on the disk in the event of a whole disk image"), else the partition
 * `efiSystemPartUuid` names. Undefined when neither finds one; a UUID that names no
 * partition is IPA's DeviceNotFound.
 */
export async function findEsp(run: RunCommand, disk: string, efiSystemPartUuid: string | null | undefined, sysRoot?: string): Promise<DiskPartition | undefined> {
  const table = await readPartitionTable(run, disk);
  const byType = table ? espNumberFromTable(disk, table) : undefined;
  if (byType !== undefined) {
    const known = (await kernelPartitions(disk, sysRoot)).some((p) => p.number === byType);
    if (!known) throw deviceNotFound(`the EFI system partition ${byType} of ${disk} is in the partition table but the kernel does not know it`);
    return { path: partitionPath(disk, byType), number: byType };
  }
  if (!efiSystemPartUuid) return undefined;
  const found = await findPartitionByUuid(run, disk, efiSystemPartUuid, sysRoot);
  if (!found) throw noPartitionWithUuid(efiSystemPartUuid, disk);
  return { path: found.path, number: found.number };
}
