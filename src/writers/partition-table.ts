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
 * backup GPT in the middle, so the backup header, its entries, the primary header's pointers
 * and the protective MBR are rewritten for the disk's real end, byte for byte as `sgdisk -e`
 * writes them. Done here rather than with sgdisk, which sleeps a second after every write.
 * `head` is the image's first MiB as written (the table was validated from it).
 */
export async function moveBackupGptToEnd(device: string, head: Buffer, table: PartitionTable, deviceSize: number, sectorSize: number): Promise<boolean> {
  if (table.type !== 'gpt') return false;
  const sectors = BigInt(deviceSize / sectorSize);
  const lastLba = sectors - 1n;
  if (table.backupLba === lastLba) return false;
  const { mbr, primary, backup, backupLba } = relocatedGpt(head, sectors, sectorSize);
  let handle;
  try {
    handle = await open(device, 'r+');
    await handle.write(backup, 0, backup.length, Number(backupLba) * sectorSize);
    await handle.write(mbr, 0, mbr.length, 0);
    await handle.write(primary, 0, primary.length, sectorSize);
    await handle.sync();
  } catch (err) {
    throw deploymentError(`Failed to fix GPT partition on disk ${device}. Error: ${(err as Error).message}`);
  } finally {
    await handle?.close();
  }
  return true;
}

/** The sectors `sgdisk -e` rewrites: MBR, primary header, and the backup entries + header (at `backupLba`). */
export function relocatedGpt(head: Buffer, sectors: bigint, sectorSize: number): { mbr: Buffer; primary: Buffer; backup: Buffer; backupLba: bigint } {
  const lastLba = sectors - 1n;
  const primary = Buffer.from(head.subarray(sectorSize, 2 * sectorSize));
  const headerSize = primary.readUInt32LE(12);
  const entriesLba = Number(primary.readBigUInt64LE(72));
  const entriesBytes = primary.readUInt32LE(80) * primary.readUInt32LE(84);
  const entrySectors = BigInt(Math.ceil(entriesBytes / sectorSize));
  primary.writeBigUInt64LE(lastLba, 32);
  primary.writeBigUInt64LE(lastLba - entrySectors - 1n, 48);
  sealHeader(primary, headerSize);

  const backup = Buffer.alloc(Number(entrySectors + 1n) * sectorSize);
  head.copy(backup, 0, entriesLba * sectorSize, entriesLba * sectorSize + entriesBytes);
  const header = backup.subarray(Number(entrySectors) * sectorSize);
  primary.copy(header);
  header.writeBigUInt64LE(lastLba, 24);
  header.writeBigUInt64LE(1n, 32);
  header.writeBigUInt64LE(lastLba - entrySectors, 72);
  sealHeader(header, headerSize);

  const mbr = Buffer.from(head.subarray(0, 512));
  // sgdisk writes its MBR without the disk signature (IPA then reports root uuid 0x00000000,
  // which Ironic and install_bootloader take for a whole-disk image); the boot code stays.
  mbr.fill(0, 440, 446);
  const entries = [0, 1, 2, 3].map((i) => mbr.subarray(446 + 16 * i, 462 + 16 * i));
  const used = entries.filter((e) => e[4] !== 0);
  // A plain protective MBR covers the whole disk; a hybrid one is the operator's and stays.
  const protective = used.length === 1 && used[0]![4] === 0xee ? used[0]! : undefined;
  if (protective) {
    const size = lastLba - BigInt(protective.readUInt32LE(8)) + 1n;
    protective.writeUInt32LE(Number(size > 0xffffffffn ? 0xffffffffn : size), 12);
    chsOf(lastLba).copy(protective, 5);
  }
  return { mbr, primary, backup, backupLba: lastLba - entrySectors };
}

function sealHeader(header: Buffer, size: number): void {
  header.writeUInt32LE(0, 16);
  header.writeUInt32LE(crc32(header.subarray(0, size)), 16);
}

/**
 * An LBA as MBR cylinder/head/sector bytes with gptfdisk's 255-head, 63-sector geometry; past
 * cylinder 1023 gptfdisk writes FF FF FF into a protective MBR.
 */
function chsOf(lba: bigint): Buffer {
  const perCylinder = 255n * 63n;
  const cylinder = lba / perCylinder;
  if (cylinder >= 1024n) return Buffer.from([0xff, 0xff, 0xff]);
  const rest = lba % perCylinder;
  const head = rest / 63n;
  const sector = (rest % 63n) + 1n;
  return Buffer.from([Number(head), Number(sector + (cylinder >> 8n) * 64n), Number(cylinder & 255n)]);
}
