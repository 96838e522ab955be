import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { BlockDeviceInfo } from './block-device.ts';
import { HELD_BYTES, MiB } from './block-sink.ts';
import { imageWriteError } from './errors.ts';

/**
 * qcow2 without holding the image in RAM or tmpfs (spec §13: IPA's biggest complaint). The
 * qcow2 file is streamed onto the target disk itself, just past the end of the virtual disk
 * it describes, hashed as it arrives; only once its checksum matched does `qemu-img`
 * convert it in place to the start of the disk, reading the staged copy through a raw
 * offset window. The converted first and last MiB are extracted separately (two 1 MiB files)
 * and committed last, like every other image, so a conversion cut short is never bootable.
 */
export interface StagedQcow2 {
  device: BlockDeviceInfo;
  /** Device offset of the virtual disk's byte 0 (a partition image's root partition). */
  targetOffset: number;
  /** Virtual disk size from the qcow2 header. */
  virtualSize: number;
  /** Device offset where the qcow2 file was staged. */
  stagingOffset: number;
  stagedSize: number;
}

/** Where the qcow2 file goes: the first MiB boundary after the virtual disk. */
export function stagingOffsetFor(virtualSize: number): number {
  return Math.ceil(virtualSize / MiB) * MiB;
}

/** qemu-img --image-opts values escape commas by doubling them. */
const opt = (value: string | number) => String(value).replace(/,/g, ',,');

function sourceOpts(s: StagedQcow2, offset: number, size: number): string {
  return [
    'driver=raw', `offset=${offset}`, `size=${size}`,
    'file.driver=qcow2',
    'file.file.driver=raw', `file.file.offset=${s.stagingOffset}`, `file.file.size=${s.stagedSize}`,
    'file.file.file.driver=host_device', `file.file.file.filename=${opt(s.device.path)}`,
    // The same device is read (staged copy) and written (target): qemu's own lock would refuse.
    'file.file.file.locking=off',
  ].join(',');
}

function targetOpts(s: StagedQcow2, offset: number, size: number): string {
  return [
    'driver=raw', `offset=${s.targetOffset + offset}`, `size=${size}`,
    'file.driver=host_device', `file.filename=${opt(s.device.path)}`, 'file.locking=off', 'file.cache.direct=on',
  ].join(',');
}

export interface ConvertOptions {
  log: Logger;
  /** qemu-img's progress, as a fraction. */
  onProgress?(fraction: number): void;
}

/** The converted image, except its held first and last MiB, which are returned (offsets in the virtual disk). */
export async function convertStagedQcow2(s: StagedQcow2, opts: ConvertOptions): Promise<{ head: Buffer; tail: { offset: number; data: Buffer } }> {
  const v = s.virtualSize;
  const headEnd = Math.min(v, HELD_BYTES);
  const tailStart = Math.max(headEnd, Math.floor((v - HELD_BYTES) / 4096) * 4096);
  if (tailStart > headEnd) {
    await qemuImg(s.device.path, [
      'convert', '-p', '-n', '-W', '-t', 'none',
      '--image-opts', sourceOpts(s, headEnd, tailStart - headEnd),
      '--target-image-opts', targetOpts(s, headEnd, tailStart - headEnd),
    ], opts);
  }
  const dir = await mkdtemp(join(tmpdir(), 'ina-qcow2-'));
  try {
    const extract = async (name: string, offset: number, size: number) => {
      if (size === 0) return Buffer.alloc(0);
      const file = join(dir, name);
      await qemuImg(s.device.path, ['convert', '-O', 'raw', '--image-opts', sourceOpts(s, offset, size), file], { log: opts.log });
      return readFile(file);
    };
    const head = await extract('head', 0, headEnd);
    const tail = await extract('tail', tailStart, v - tailStart);
    return { head, tail: { offset: tailStart, data: tail } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * qemu-img as IPA runs it (spec §9.5 B): address space capped at 2 GiB and MALLOC_ARENA_MAX=3,
 * so a large image cannot balloon the ramdisk's memory.
 */
async function qemuImg(device: string, args: string[], opts: ConvertOptions): Promise<void> {
  const { execa } = await import('execa');
  const child = execa('prlimit', ['--as=2147483648', '--', 'qemu-img', ...args], {
    env: { MALLOC_ARENA_MAX: '3', LC_ALL: 'C' },
    buffer: { stdout: false, stderr: true },
    reject: false,
  });
  let tail = '';
  child.stdout?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-200);
    const m = /\((\d+(?:\.\d+)?)\/100%\)[^(]*$/.exec(tail);
    if (m) opts.onProgress?.(Number(m[1]) / 100);
  });
  const result = await child;
  if (result.failed) {
    const stderr = typeof result.stderr === 'string' ? result.stderr.trim() : '';
    if ((result as { code?: string }).code === 'ENOENT') throw imageWriteError(device, 127, '', 'prlimit (util-linux) is not installed');
    throw imageWriteError(device, result.exitCode ?? 'unknown', '', stderr || String(result.message));
  }
}
