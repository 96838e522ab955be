import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';

/** Mode overrides by path in the archive; everything else is normalized (see modeOf). */
export type ModeOverrides = ReadonlyMap<string, number>;

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/**
 * Permission bits that do not depend on the build machine's umask or on how a package was
 * unpacked: directories 0755, files 0755 when any execute bit is set and 0644 otherwise,
 * unless the overrides name the path (0700 for /root, 1777 for /tmp, ...).
 */
export function modeOf(path: string, kind: 'dir' | 'file' | 'symlink', hostMode: number, overrides: ModeOverrides): number {
  const override = overrides.get(path);
  if (kind === 'symlink') return S_IFLNK | 0o777;
  if (kind === 'dir') return S_IFDIR | (override ?? 0o755);
  return S_IFREG | (override ?? ((hostMode & 0o111) !== 0 ? 0o755 : 0o644));
}

function header(fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; nameSize: number }): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return Buffer.from(
    '070701' +
      hex(fields.ino) +
      hex(fields.mode) +
      hex(0) + // uid: root
      hex(0) + // gid: root
      hex(fields.nlink) +
      hex(fields.mtime) +
      hex(fields.size) +
      hex(0) + hex(0) + hex(0) + hex(0) + // dev and rdev major/minor
      hex(fields.nameSize) +
      hex(0), // check
    'ascii',
  );
}

const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

async function write(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Every path under `root`, relative, sorted bytewise (as `LC_ALL=C sort` would). */
async function listTree(root: string): Promise<string[]> {
  const paths: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      paths.push(rel);
      if (entry.isDirectory()) await walk(join(dir, entry.name), rel);
    }
  };
  await walk(root, '');
  return paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/**
 * Writes `root` as a cpio "newc" archive, the format the kernel unpacks into its initramfs.
 * Reproducible by construction: sorted names, owner root, one fixed mtime, inode numbers in
 * order, normalized modes; no device nodes (devtmpfs provides them at boot).
 */
export async function writeCpio(root: string, outFile: string, opts: { mtime: number; modes: ModeOverrides }): Promise<void> {
  const out = createWriteStream(outFile);
  let ino = 1;
  const entry = async (name: string, mode: number, nlink: number, data: Buffer | string | undefined, size: number) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const head = header({ ino: ino++, mode, nlink, mtime: opts.mtime, size, nameSize: nameBytes.length });
    await write(out, head);
    await write(out, nameBytes);
    await write(out, pad4(head.length + nameBytes.length));
    if (typeof data === 'string') {
      for await (const chunk of createReadStream(data, { highWaterMark: 1 << 20 })) await write(out, chunk as Buffer);
    } else if (data) {
      await write(out, data);
    }
    await write(out, pad4(size));
  };
  for (const rel of await listTree(root)) {
    const path = join(root, rel);
    const st = await lstat(path);
    if (st.isSymbolicLink()) {
      const target = Buffer.from(await readlink(path));
      await entry(rel, modeOf(rel, 'symlink', st.mode, opts.modes), 1, target, target.length);
    } else if (st.isDirectory()) {
      await entry(rel, modeOf(rel, 'dir', st.mode, opts.modes), 2, undefined, 0);
    } else if (st.isFile()) {
      await entry(rel, modeOf(rel, 'file', st.mode, opts.modes), 1, path, st.size);
    } else {
      throw new Error(`cannot archive ${rel}: not a file, directory or symlink`);
    }
  }
  ino = 0;
  await entry('TRAILER!!!', 0, 1, undefined, 0);
  out.end();
  await finished(out);
}
