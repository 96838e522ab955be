import type { BlockDeviceInfo } from './block-device.ts';

/**
 * Where on the device the image goes: the whole disk, or the extent of a partition image's
 * root partition, written through the disk before its partition table exists.
 */
export interface ImageTarget {
  /** Device offset of the image's byte 0. */
  offset: number;
  /** Bytes the image may take from there. */
  size: number;
  /**
   * The device's partition tables are the writer's: zeroed before the first byte and after a
   * failure. False when an existing table must survive (preserve_ephemeral).
   */
  ownsTables: boolean;
  /** Device offset a qcow2 file may be staged up to (past the virtual disk). */
  stagingEnd: number;
}

/** The whole device as the target (whole-disk images). */
export function wholeDevice(device: BlockDeviceInfo): ImageTarget {
  return { offset: 0, size: device.size, ownsTables: true, stagingEnd: device.size };
}
