import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** A test image file with its digests (of the file as served). */
export interface TestImage {
  path: string;
  size: number;
  sha256: string;
  sha512: string;
  md5: string;
}

const MiB = 1 << 20;

export async function digests(path: string): Promise<TestImage> {
  const h = { sha256: createHash('sha256'), sha512: createHash('sha512'), md5: createHash('md5') };
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB }) as AsyncIterable<Buffer>) {
    for (const x of Object.values(h)) x.update(chunk);
  }
  return { path, size: (await stat(path)).size, sha256: h.sha256.digest('hex'), sha512: h.sha512.digest('hex'), md5: h.md5.digest('hex') };
}

export interface DiskImageOptions {
  size: number;
  table?: 'gpt' | 'dos' | 'none';
  /** The 4 bytes at offset 440 (MBR disk signature), as get_partition_uuids reports them. */
  diskId?: number;
  /** Every n-th MiB of the partition is random data; the others stay zero (sparse-friendly). */
  dataEvery?: number;
  /** Bytes of random data in total at most (for large sparse images). */
  maxData?: number;
}

/**
 * A whole-disk image as a real one looks: a GPT (or MBR) table written by sgdisk/sfdisk,
 * one partition from 1 MiB to the end, its content a mix of random MiB blocks and zero
 * blocks, and a disk signature at offset 440.
 */
export async function makeDiskImage(dir: string, name: string, opts: DiskImageOptions): Promise<TestImage> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  await fh.truncate(opts.size);
  await fh.close();
  const table = opts.table ?? 'gpt';
  if (table === 'gpt') {
    execFileSync('sgdisk', ['-n', '1:2048:0', '-t', '1:8300', '-c', '1:root', path], { stdio: 'ignore' });
  } else if (table === 'dos') {
    execFileSync('sfdisk', ['--quiet', path], { input: 'label: dos\nstart=2048, type=83\n', stdio: ['pipe', 'ignore', 'ignore'] });
  }
  const w = await open(path, 'r+');
  try {
    const every = opts.dataEvery ?? 2;
    let data = 0;
    const end = opts.size - (table === 'gpt' ? MiB : 0);
    for (let at = MiB, i = 0; at + MiB <= end; at += MiB, i++) {
      if (i % every !== 0) continue;
      if (opts.maxData !== undefined && data >= opts.maxData) break;
      await w.write(randomBytes(MiB), 0, MiB, at);
      data += MiB;
    }
    // Something in the image's last MiB too, before the backup GPT, so the held tail carries data.
    if (opts.size > 3 * MiB) await w.write(randomBytes(64 * 1024), 0, 64 * 1024, opts.size - MiB - 128 * 1024);
    if (opts.diskId !== undefined) {
      const id = Buffer.alloc(4);
      id.writeUInt32LE(opts.diskId >>> 0);
      await w.write(id, 0, 4, 440);
    }
  } finally {
    await w.close();
  }
  return digests(path);
}

export type Packing = 'gzip' | 'zstd' | 'xz' | 'qcow2';

/** The same image gzip'd, zstd'd, xz'd or converted to qcow2 by the real tools. */
export async function pack(image: TestImage, packing: Packing, out?: string): Promise<TestImage> {
  const target = out ?? `${image.path}.${packing === 'gzip' ? 'gz' : packing === 'zstd' ? 'zst' : packing}`;
  switch (packing) {
    case 'gzip':
      execFileSync('sh', ['-c', 'gzip -1 -c "$0" > "$1"', image.path, target]);
      break;
    case 'zstd':
      execFileSync('zstd', ['-q', '-f', '-T0', '-3', image.path, '-o', target]);
      break;
    case 'xz':
      execFileSync('sh', ['-c', 'xz -T2 -0 -c "$0" > "$1"', image.path, target]);
      break;
    case 'qcow2':
      execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', image.path, target]);
      break;
  }
  return digests(target);
}

/**
 * Bytes [start, end) of a block device or file, hashed (to compare a disk with an image; after
 * the backup GPT moved to a larger disk's end, the first MiB differs and the rest must not).
 */
export async function hashRange(path: string, start: number, end: number, algorithm = 'sha256'): Promise<string> {
  const h = createHash(algorithm);
  if (end > start) {
    for await (const chunk of createReadStream(path, { start, end: end - 1, highWaterMark: 4 * MiB }) as AsyncIterable<Buffer>) h.update(chunk);
  }
  return h.digest('hex');
}

/** The first `length` bytes of a block device or file, hashed. */
export function hashPrefix(path: string, length: number, algorithm = 'sha256'): Promise<string> {
  return hashRange(path, 0, length, algorithm);
}

export async function readBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** True when nothing on `device` looks like a partition table (primary or backup). */
export function partitionTableOf(device: string): string | undefined {
  try {
    const out = execFileSync('blkid', ['-p', '-o', 'export', device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /^PTTYPE=(.*)$/m.exec(out)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * A partition image as operators build them: an ext4 filesystem (the real mkfs.ext4,
 * populated from `files` with -d) with a fixed UUID, so get_partition_uuids can be checked.
 */
export async function makeFilesystemImage(dir: string, name: string, opts: { sizeMb: number; uuid: string; files: Record<string, string | Buffer> }): Promise<TestImage> {
  const root = join(dir, `${name}.d`);
  for (const [file, content] of Object.entries(opts.files)) {
    const path = join(root, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  const path = join(dir, name);
  execFileSync('mkfs.ext4', ['-q', '-F', '-U', opts.uuid, '-L', 'img-root', '-E', 'root_owner=0:0', '-d', root, path, `${opts.sizeMb}M`], { stdio: 'ignore' });
  return digests(path);
}
