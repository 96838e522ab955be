import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from '../log.ts';
import { alignedSharedMemory } from './aligned-memory.ts';
import type { BlockDeviceInfo } from './block-device.ts';
import { DeviceWriteError, HELD_BYTES } from './block-sink.ts';
import { wholeDevice, type ImageTarget } from './image-target.ts';

export interface Region {
  offset: number;
  data: Buffer;
}

/**
 * Writes small regions (the held first and last MiB) with O_DIRECT from aligned memory,
 * padded to the logical block size, then flushes the device cache.
 */
export async function writeRegions(device: BlockDeviceInfo, regions: Region[]): Promise<void> {
  const block = device.logicalBlockSize;
  const size = Math.max(0, ...regions.map((r) => Math.ceil(r.data.length / block) * block));
  const buf = Buffer.from(alignedSharedMemory(Math.max(size, block)));
  let handle;
  try {
    handle = await open(device.path, constants.O_WRONLY | constants.O_DIRECT | constants.O_EXCL);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new DeviceWriteError(`cannot open ${device.path} for writing: ${e.message}`, e.code);
  }
  try {
    for (const region of regions) {
      const padded = Math.ceil(region.data.length / block) * block;
      if (padded === 0) continue;
      buf.fill(0, 0, padded);
      region.data.copy(buf, 0);
      try {
        const { bytesWritten } = await handle.write(buf, 0, padded, region.offset);
        if (bytesWritten !== padded) throw Object.assign(new Error('short write: no space left on the device'), { code: 'ENOSPC' });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new DeviceWriteError(`writing ${device.path} at offset ${region.offset} failed: ${e.message}`, e.code);
      }
    }
    try {
      await handle.sync();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new DeviceWriteError(`syncing data to ${device.path} failed: ${e.message}`, e.code);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Zeroes the image's first MiB and its last MiB and, when the device's tables are the
 * writer's, the device's first and last MiB: whatever was written, no partition table
 * (primary or backup) and no filesystem superblock of a partition image is left to boot or
 * mount. Best effort, each region on its own: the device may be failing.
 */
export async function wipeImage(device: BlockDeviceInfo, target: ImageTarget, imageSize: number | undefined, log: Logger): Promise<void> {
  const offsets = new Set<number>([target.offset]);
  if (target.ownsTables) offsets.add(0).add(Math.max(0, device.size - HELD_BYTES));
  if (imageSize !== undefined && imageSize > HELD_BYTES) offsets.add(target.offset + Math.floor((imageSize - HELD_BYTES) / 4096) * 4096);
  for (const offset of offsets) {
    // A preserved table's backup GPT may sit right after the image: stay inside the target.
    const end = target.ownsTables ? device.size : target.offset + target.size;
    const length = Math.min(HELD_BYTES + 4096, end - offset);
    await writeRegions(device, [{ offset, data: Buffer.alloc(Math.floor(length / device.logicalBlockSize) * device.logicalBlockSize) }]).catch(
      (err: Error) => log.warn({ device: device.path, offset, err: err.message }, 'could not wipe a partition-table area'),
    );
  }
}

/** wipeImage for a whole-disk image. */
export function wipePartitionTables(device: BlockDeviceInfo, imageSize: number | undefined, log: Logger): Promise<void> {
  return wipeImage(device, wholeDevice(device), imageSize, log);
}
