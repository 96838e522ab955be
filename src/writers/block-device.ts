import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { RunCommand } from '../run.ts';

/** What the writers need to know about a target block device, from sysfs (no udev in the ramdisk). */
export interface BlockDeviceInfo {
  path: string;
  size: number;
  logicalBlockSize: number;
  /** Non-zero when the device can zero ranges without writing them (WRITE ZEROES, discard-zeroes). */
  writeZeroesMaxBytes: number;
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export async function blockDeviceInfo(device: string, sysRoot = '/sys'): Promise<BlockDeviceInfo> {
  const path = await realpath(device);
  const classDir = join(sysRoot, 'class/block', basename(path));
  const sectors = await readNumber(join(classDir, 'size'));
  if (sectors === undefined) throw new Error(`${device}: the kernel does not list it in ${classDir}`);
  // A partition has no queue/ of its own: its disk's queue applies.
  const isPartition = (await readNumber(join(classDir, 'partition'))) !== undefined;
  const queue = isPartition ? join(dirname(await realpath(classDir)), 'queue') : join(classDir, 'queue');
  return {
    path,
    size: sectors * 512,
    logicalBlockSize: (await readNumber(join(queue, 'logical_block_size'))) ?? 512,
    writeZeroesMaxBytes: (await readNumber(join(queue, 'write_zeroes_max_bytes'))) ?? 0,
  };
}

/**
 * Zeroes a range without writing it: fallocate(PUNCH_HOLE) on a block device is a
 * no-fallback zero-out (the kernel refuses rather than writing zeroes), so success
 * guarantees that the range reads back as zeroes (DESIGN.md: zero-skip only then).
 */
export async function punchHole(run: RunCommand, device: string, offset: number, length: number): Promise<boolean> {
  try {
    await run('fallocate', ['--punch-hole', '--offset', String(offset), '--length', String(length), device]);
    return true;
  } catch {
    return false;
  }
}
