import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { deploymentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';

/** The partition table at the start of an image, read from the held first MiB (spec §7.1 step 4). */
export interface PartitionTable {
  type: 'gpt' | 'dos';
  partitions: number;
  /** GPT only: the LBA of the backup header the image declares. */
  backupLba?: bigint;
}

const GPT_SIGNATURE = 'EFI PART';

function invalidTable(reason: string) {
  return deploymentError(
    `Unable to find a valid partition table on the disk after writing the image. The image may be corrupted or it uses a different sector size than the device. Error: ${reason}`,
  );
}

/**
 * IPA validates the partitioning after writing (parted must list at least one partition);
 * here the same rule is applied to the held first MiB before it is committed, so an image
 * without a usable table never becomes the disk's first MiB. Errors carry IPA's messages.
 */
export function readPartitionTable(head: Buffer, sectorSize: number, device: string): PartitionTable {
  if (head.length < 512 || head[510] !== 0x55 || head[511] !== 0xaa) {
    throw deploymentError(`No partitions found on the device ${device} after writing the image.`);
  }
  const types = [0, 1, 2, 3].map((i) => head[446 + 16 * i + 4]!);
  if (!types.includes(0xee)) {
    const partitions = types.filter((t) => t !== 0).length;
    if (partitions === 0) throw deploymentError(`No partitions found on the device ${device} after writing the image.`);
    return { type: 'dos', partitions };
  }
  const at = sectorSize;
  if (head.length < at + 92 || head.toString('latin1', at, at + 8) !== GPT_SIGNATURE) {
    const other = sectorSize === 512 ? 4096 : 512;
    if (head.length >= other + 8 && head.toString('latin1', other, other + 8) === GPT_SIGNATURE) {
      throw invalidTable(`the image's GPT uses ${other}-byte sectors, the device ${device} has ${sectorSize}-byte sectors`);
    }
    throw invalidTable('protective MBR without a GPT header');
  }
  const headerSize = head.readUInt32LE(at + 12);
  if (headerSize < 92 || headerSize > sectorSize) throw invalidTable(`GPT header size ${headerSize} is invalid`);
  const header = Buffer.from(head.subarray(at, at + headerSize));
  const storedCrc = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  if (crc32(header) !== storedCrc) throw invalidTable('the GPT header checksum does not match');
  const entriesLba = head.readBigUInt64LE(at + 72);
  const count = head.readUInt32LE(at + 80);
  const entrySize = head.readUInt32LE(at + 84);
  const start = Number(entriesLba) * sectorSize;
  const end = start + count * entrySize;
  if (entrySize < 128 || end > head.length) throw invalidTable('the GPT partition entries lie outside the first MiB');
  if (crc32(head.subarray(start, end)) !== head.readUInt32LE(at + 88)) throw invalidTable('the GPT partition entries checksum does not match');
  let partitions = 0;
  for (let off = start; off < end; off += entrySize) {
    if (!head.subarray(off, off + 16).equals(Buffer.alloc(16))) partitions++;
  }
  if (partitions === 0) throw deploymentError(`No partitions found on the device ${device} after writing the image.`);
  return { type: 'gpt', partitions, backupLba: head.readBigUInt64LE(at + 32) };
}

/**
 * The whole-disk "root uuid" (spec §9.8): the 4 bytes at offset 440 as one little-endian
 * 32-bit integer, `0x%08x`, as IPA's `hexdump -s 440 -n 4 -e '"0x%08x"'` prints it.
 */
export async function readDiskIdentifier(device: string): Promise<string> {
  const handle = await open(device, 'r');
  try {
    const buf = Buffer.alloc(4);
    await handle.read(buf, 0, 4, 440);
    return `0x${buf.readUInt32LE(0).toString(16).padStart(8, '0')}`;
  } finally {
    await handle.close();
  }
}

/** Tells the kernel about the partitions on `device` (this kernel does not parse tables itself). */
export async function rescanPartitions(run: RunCommand, device: string, log: Logger): Promise<void> {
  try {
    await run('partx', ['-u', device]);
  } catch (err) {
    log.warn({ device, err: (err as Error).message }, 'partx could not update the partitions');
  }
}

/**
 * IPA's fix_gpt_partition (spec §9.5 A): a whole-disk image written to a larger disk has its
 * backup GPT in the middle; `sgdisk -e` moves it to the end so the table is valid.
 */
export async function moveBackupGptToEnd(run: RunCommand, device: string, table: PartitionTable, deviceSize: number, sectorSize: number): Promise<boolean> {
  if (table.type !== 'gpt') return false;
  const lastLba = BigInt(deviceSize / sectorSize - 1);
  if (table.backupLba === lastLba) return false;
  try {
    await run('sgdisk', ['-e', device]);
  } catch (err) {
    throw deploymentError(`Failed to fix GPT partition on disk ${device}. Error: ${(err as Error).message}`);
  }
  return true;
}
