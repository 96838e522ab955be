import { open } from 'node:fs/promises';
import type { Logger } from '../../log.ts';
import { ToolError, type RunCommand } from '../../run.ts';
import { listSignatures } from '../blkid.ts';
import { deviceSize } from '../partitions.ts';
import { readBack, type Range } from './readback.ts';
import { round, type DeviceReport } from './report.ts';

/**
 * Bytes zeroed at each end of the device. IPA zeroes 33 sectors (the primary and backup GPT);
 * a MiB at each end also covers the MBR, LVM's label (sector 1), md superblocks 1.1/1.2 (at
 * 0 and 4 KiB) and 0.90/1.0 (in the last 128 KiB), and IMSM/DDF anchors in the last sectors.
 */
export const EDGE_BYTES = 1024 * 1024;
const FREE_WAIT_ATTEMPTS = 20;

export interface MetadataOptions {
  run: RunCommand;
  log: Logger;
  sleep: (seconds: number) => Promise<void>;
}

/**
 * IPA's destroy_disk_metadata (spec §11.2), made verifiable: wipefs every signature, zero
 * both ends (both GPT copies and the RAID/LVM metadata areas), sgdisk -Z, wait until no
 * process holds the device; then read the zeroed ranges back and list signatures again.
 * Anything left behind is an error, not a success.
 */
export async function destroyMetadata(device: string, opts: MetadataOptions): Promise<DeviceReport> {
  const started = performance.now();
  const size = await deviceSize(device);
  const before = await listSignatures(opts.run, device);
  try {
    await opts.run('wipefs', ['--force', '--all', device]);
  } catch (err) {
    // Old util-linux without --force (IPA does the same).
    if (!(err instanceof ToolError) || err.missing || !err.message.includes('--force')) throw err;
    await opts.run('wipefs', ['--all', device]);
  }
  const ranges = edgeRanges(size);
  await writeZeroes(device, ranges);
  await opts.run('sgdisk', ['-Z', device]);
  await waitUntilFree(device, opts);

  const readBackResult = await readBack(opts.run, device, ranges, 'zeroes');
  if (!readBackResult.all_zero) {
    throw new Error(`${device} still reads non-zero at byte ${readBackResult.first_nonzero_offset} after its metadata was zeroed`);
  }
  const after = await listSignatures(opts.run, device);
  if (after.length > 0) {
    throw new Error(`signatures remain on ${device} after the wipe: ${after.map((s) => `${s.type} at ${s.offset}`).join(', ')}`);
  }
  opts.log.info({ device, removed: before.map((s) => s.type) }, 'disk metadata destroyed');
  return {
    device,
    method: 'metadata',
    bytes_covered: ranges.reduce((n, r) => n + r.length, 0),
    size,
    duration_s: round((performance.now() - started) / 1000),
    signatures_removed: before.map((s) => s.type),
    read_back: readBackResult,
  };
}

/** The first and last EDGE_BYTES, or the whole device when it is smaller than both. */
export function edgeRanges(size: number): Range[] {
  if (size <= 2 * EDGE_BYTES) return [{ offset: 0, length: size }];
  return [
    { offset: 0, length: EDGE_BYTES },
    { offset: size - EDGE_BYTES, length: EDGE_BYTES },
  ];
}

export async function writeZeroes(device: string, ranges: readonly Range[]): Promise<void> {
  const chunk = Buffer.alloc(EDGE_BYTES);
  const fh = await open(device, 'r+');
  try {
    for (const r of ranges) {
      for (let done = 0; done < r.length; ) {
        const n = Math.min(chunk.length, r.length - done);
        const { bytesWritten } = await fh.write(chunk, 0, n, r.offset + done);
        if (bytesWritten <= 0) throw new Error(`short write to ${device} at byte ${r.offset + done}`);
        done += bytesWritten;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** `fuser DEV` exits 0 while a process has the device open (IPA waits 20 x 1 s). */
async function waitUntilFree(device: string, opts: MetadataOptions): Promise<void> {
  for (let attempt = 1; attempt <= FREE_WAIT_ATTEMPTS; attempt++) {
    try {
      await opts.run('fuser', [device]);
    } catch (err) {
      if (err instanceof ToolError && err.missing) {
        opts.log.warn({ device }, 'fuser is not installed; not waiting for the device to become free');
        return;
      }
      if (err instanceof ToolError && err.exitCode === 1) return;
      throw err;
    }
    if (attempt === FREE_WAIT_ATTEMPTS) break;
    await opts.sleep(1);
  }
  throw new Error(`${device} is still in use by a process after ${FREE_WAIT_ATTEMPTS} s (fuser)`);
}
