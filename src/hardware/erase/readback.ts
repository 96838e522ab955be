import { randomInt } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { RunCommand } from '../../run.ts';
import type { ReadBack } from './report.ts';

export interface Range {
  offset: number;
  length: number;
}

const SAMPLE_BYTES = 64 * 1024;

/**
 * Where to look after an erase: the first and last MiB (partition tables, RAID and LVM
 * metadata live there) and `randomCount` random 64 KiB blocks in between, so a device that
 * was only partly overwritten is caught wherever the gap is.
 */
export function sampleRanges(size: number, randomCount: number, random: (max: number) => number = randomInt): Range[] {
  const edge = Math.min(1024 * 1024, size);
  const ranges: Range[] = [{ offset: 0, length: edge }];
  if (size > edge) ranges.push({ offset: size - edge, length: edge });
  const span = size - 2 * edge - SAMPLE_BYTES;
  if (span > 0) {
    for (let i = 0; i < randomCount; i++) {
      const offset = edge + Math.floor(random(Math.floor(span / 512)) * 512);
      ranges.push({ offset, length: SAMPLE_BYTES });
    }
  }
  return ranges;
}

/**
 * Reads `ranges` of `device` from the device itself: the block device's page cache is
 * dropped first (`blockdev --flushbufs`), because a firmware erase changes the media under
 * the cache, and a cached read would prove nothing.
 */
export async function readBack(run: RunCommand, device: string, ranges: Range[], expected: ReadBack['expected']): Promise<ReadBack> {
  await run('blockdev', ['--flushbufs', device]);
  const fh = await open(device, 'r');
  let sampled = 0;
  let firstNonZero: number | undefined;
  try {
    const buf = Buffer.alloc(Math.max(...ranges.map((r) => r.length), 0));
    for (const r of ranges) {
      const { bytesRead } = await fh.read(buf, 0, r.length, r.offset);
      sampled += bytesRead;
      if (firstNonZero === undefined) {
        const at = firstNonZeroIndex(buf.subarray(0, bytesRead));
        if (at >= 0) firstNonZero = r.offset + at;
      }
    }
  } finally {
    await fh.close();
  }
  return {
    expected,
    samples: ranges.length,
    sampled_bytes: sampled,
    all_zero: firstNonZero === undefined,
    ...(firstNonZero === undefined ? {} : { first_nonzero_offset: firstNonZero }),
  };
}

function firstNonZeroIndex(buf: Buffer): number {
  // Compare 8 bytes at a time; only the tail goes byte by byte.
  const words = Math.floor(buf.length / 8);
  for (let i = 0; i < words; i++) {
    if (buf.readBigUInt64LE(i * 8) !== 0n) {
      for (let j = i * 8; j < i * 8 + 8; j++) if (buf[j] !== 0) return j;
    }
  }
  for (let j = words * 8; j < buf.length; j++) if (buf[j] !== 0) return j;
  return -1;
}
