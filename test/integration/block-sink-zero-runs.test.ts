import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/run.ts';
import { blockDeviceInfo } from '../../src/writers/block-device.ts';
import { BlockSink } from '../../src/writers/block-sink.ts';
import { hashRange } from '../helpers/disk-images.ts';
import { prerequisite } from '../helpers/env.ts';
import { memoryLogger } from '../helpers/logger.ts';
import { LoopDevice } from '../helpers/loop.ts';

const MiB = 1 << 20;
const canRun = prerequisite('root for loop devices', process.getuid?.() === 0);

/** An image with a long zero run (zeroed by the device), a short one (written) and odd-sized pieces. */
function pieces(): Buffer[] {
  return [randomBytes(8 * MiB), Buffer.alloc(96 * MiB), randomBytes(3 * MiB + 512), Buffer.alloc(2 * MiB), randomBytes(5 * MiB + 4096)];
}

/** Fills the disk with 0xaa so that anything not written or zeroed shows. */
async function scribble(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'r+');
  const junk = Buffer.alloc(4 * MiB, 0xaa);
  try {
    for (let at = 0; at < bytes; at += junk.length) await fh.write(junk, 0, Math.min(junk.length, bytes - at), at);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

describe.skipIf(!canRun)('BlockSink zero runs (DESIGN.md: zero-skip only where the device guarantees zeroes)', () => {
  let disk: LoopDevice;
  beforeEach(async () => {
    disk = await LoopDevice.create(160 * MiB);
    await scribble(disk.path, 160 * MiB);
  });
  afterEach(async () => {
    await disk?.destroy();
  });

  for (const zeroSkip of [true, false]) {
    test(`zeroSkip ${zeroSkip}: the disk holds the image exactly, zero runs included`, async () => {
      const { log, lines } = memoryLogger();
      const device = await blockDeviceInfo(disk.path);
      const sink = await BlockSink.open({ device, run: runCommand, log, guard: async () => undefined, holdBack: true, hashAlgorithm: 'sha256', zeroSkip });
      const image = pieces();
      const expected = createHash('sha256');
      let size = 0;
      try {
        for (const piece of image) {
          expected.update(piece);
          size += piece.length;
          // The pipeline's chunk sizes: 64 KiB reads.
          for (let at = 0; at < piece.length; at += 64 * 1024) await sink.write(piece.subarray(at, at + 64 * 1024));
        }
        const result = await sink.finish();
        expect(result).toEqual({ bytes: size, digest: expected.digest('hex') });
        await sink.commit();
      } finally {
        await sink.close();
      }
      expect(await hashRange(disk.path, 0, size)).toBe(createHash('sha256').update(Buffer.concat(image)).digest('hex'));
      const skipped = lines().find((l) => l.msg === 'zero blocks skipped: the device zeroed them without writing');
      // Only the long run is left to the device, and only when the device can zero (loop devices can).
      expect(skipped?.skippedBytes).toBe(zeroSkip && device.writeZeroesMaxBytes > 0 ? 96 * MiB : undefined);
    });
  }
});
