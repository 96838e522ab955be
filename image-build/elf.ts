import { copyFile, mkdir, open, readdir, realpath, lstat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { BuildError } from './errors.ts';
import { exec } from './exec.ts';

/** Where the unpacked packages keep shared libraries (Debian 12 is not merged-/usr). */
const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib'];
/** Every library lands here in the ramdisk: in ld.so's default search path without a cache. */
export const RAMDISK_LIBDIR = 'lib/x86_64-linux-gnu';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const EM_X86_64 = 62;

/** Whether `path` is an ELF file, and for which machine (e_machine), without reading it all. */
export async function elfMachine(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(20);
    const { bytesRead } = await fh.read(head, 0, 20, 0);
    if (bytesRead < 20 || !head.subarray(0, 4).equals(ELF_MAGIC)) return undefined;
    return head.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

export async function assertX86_64(path: string, what: string): Promise<void> {
  const machine = await elfMachine(path);
  if (machine !== EM_X86_64) {
    throw new BuildError(`unsupported architecture: ${what} (${path}) is not an x86-64 ELF binary (e_machine ${machine ?? 'none'})`);
  }
}

/** `readelf -d` output of several files -> NEEDED sonames per file. */
export function parseNeeded(output: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split('\n')) {
    const file = /^File: (.+)$/.exec(line);
    if (file) {
      current = [];
      result.set(file[1]!, current);
      continue;
    }
    const needed = /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(line);
    if (needed) {
      if (!current) {
        current = [];
        result.set('', current);
      }
      current.push(needed[1]!);
    }
  }
  return result;
}

async function neededOf(files: string[]): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>();
  for (let i = 0; i < files.length; i += 200) {
    const batch = files.slice(i, i + 200);
    const out = await exec('readelf', ['-d', '--wide', ...batch]);
    const parsed = parseNeeded(out);
    if (batch.length === 1) result.set(batch[0]!, parsed.get(batch[0]!) ?? parsed.get('') ?? []);
    else for (const f of batch) result.set(f, parsed.get(f) ?? []);
  }
  return result;
}

/** Every regular ELF file under `root`. */
async function elfFilesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && (await elfMachine(path)) !== undefined) found.push(path);
    }
  };
  await walk(root);
  return found.sort();
}

/**
 * Copies into the ramdisk the shared libraries that its ELF files need, transitively, from
 * the unpacked packages. A library no package provides fails the build, naming the file
 * that needs it: a tool that cannot start must never be discovered at deploy time.
 */
export async function copyLibraryClosure(tree: string, rootfs: string): Promise<string[]> {
  const copied = new Set<string>();
  let pending = await elfFilesUnder(rootfs);
  const checked = new Set<string>();
  while (pending.length > 0) {
    const needs = await neededOf(pending);
    for (const f of pending) checked.add(f);
    const next: string[] = [];
    for (const [file, sonames] of needs) {
      for (const soname of sonames) {
        if (copied.has(soname)) continue;
        const dest = join(rootfs, RAMDISK_LIBDIR, soname);
        const source = await findLibrary(tree, soname);
        if (!source) {
          throw new BuildError(
            `${relative(rootfs, file)} needs ${soname}, which none of the downloaded packages provides ` +
              '(add the Debian package that ships it to image-build/contents.ts)',
          );
        }
        await mkdir(dirname(dest), { recursive: true });
        // Dereferenced: the ramdisk gets one file named by the soname.
        await copyFile(await realpath(source), dest);
        copied.add(soname);
        if (!checked.has(dest)) next.push(dest);
      }
    }
    pending = next;
  }
  return [...copied].sort();
}

async function findLibrary(tree: string, soname: string): Promise<string | undefined> {
  for (const dir of LIBRARY_DIRS) {
    const path = join(tree, dir, soname);
    try {
      await lstat(path);
      return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
