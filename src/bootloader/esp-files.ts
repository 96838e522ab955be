import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolError, type RunCommand } from '../run.ts';
import { dirname, findEntry, type EspEntry } from './loaders.ts';

/**
 * The ESP read and written with mtools, never mounted: a FAT filesystem from an image is
 * untrusted input the kernel's vfat driver would parse, and some kernels (this project's
 * test machine) have no vfat at all. mtools checks floppy geometry unless told not to, and
 * reads ~/.mtoolsrc and /etc/mtools.conf (drive letters, mangling options) unless pointed
 * elsewhere; UTF-8 keeps long names round-tripping.
 */
const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null', LC_ALL: 'C.UTF-8' };

/** `mdir -/ -b -a` output: one `::/path` per line, directories with a trailing slash. */
export function parseMdirBare(text: string): EspEntry[] {
  const entries: EspEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('::/')) continue;
    const directory = line.endsWith('/');
    const path = line.slice(3, directory ? -1 : undefined);
    if (path !== '') entries.push({ path, directory });
  }
  return entries;
}

/**
 * Every file and directory on the FAT filesystem of `partition`, hidden ones included, in
 * directory order. mdir answers an empty root with exit 1 and `File "::/" not found`; that
 * is an empty ESP. Anything else (not FAT: "non DOS media") is a failure.
 */
export async function listEsp(run: RunCommand, partition: string): Promise<EspEntry[]> {
  try {
    return parseMdirBare(await run('mdir', ['-i', partition, '-/', '-b', '-a', '::/'], { env: MTOOLS_ENV }));
  } catch (err) {
    if (err instanceof ToolError && err.exitCode === 1 && /File "::\/" not found/.test(err.stderr)) return [];
    throw err;
  }
}

/** A file's bytes from the ESP (mcopy to a private temporary file: mtype would pass them as text). */
export async function readEspFile(run: RunCommand, partition: string, path: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'ina-esp-'));
  try {
    const local = join(dir, 'file');
    await run('mcopy', ['-i', partition, `::/${path}`, local], { env: MTOOLS_ENV });
    return await readFile(local);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface EspWrite {
  /** A local file, or `::/path` for a file already on the ESP. */
  from: string;
  /** Path on the ESP. */
  to: string;
}

/**
 * Copies files onto the ESP, creating the directories they need. A file that exists already
 * (FAT compares names case-insensitively) is never overwritten: callers leave those out, and
 * `-D s` makes mcopy fail rather than replace one should it appear anyway. The caller has
 * passed the disk guard.
 */
export async function writeEspFiles(run: RunCommand, partition: string, existing: readonly EspEntry[], writes: readonly EspWrite[], directories: readonly string[] = []): Promise<void> {
  const known = [...existing];
  const makeDirectory = async (path: string) => {
    const parts = path.split('/').filter((p) => p !== '');
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (findEntry(known, dir)) continue;
      await run('mmd', ['-i', partition, `::/${dir}`], { env: MTOOLS_ENV });
      known.push({ path: dir, directory: true });
    }
  };
  for (const dir of directories) await makeDirectory(dir);
  for (const w of writes) {
    await makeDirectory(dirname(w.to));
    await run('mcopy', ['-i', partition, '-D', 's', w.from, `::/${w.to}`], { env: MTOOLS_ENV });
    known.push({ path: w.to, directory: false });
  }
}

/** What readEspTree staged: files to write elsewhere with writeEspFiles, and every directory. */
export interface StagedEsp {
  files: EspWrite[];
  directories: string[];
  bytes: number;
}

/**
 * Every file of the ESP on `partition` copied into the private directory `into` (mcopy, one
 * file at a time), so it can be written onto another FAT. Fails as soon as the files add up
 * to more than `maxBytes`: they are staged in the ramdisk's memory, and could not fit the
 * destination anyway.
 */
export async function readEspTree(run: RunCommand, partition: string, into: string, maxBytes: number, tooLarge: (bytes: number) => Error): Promise<StagedEsp> {
  const staged: StagedEsp = { files: [], directories: [], bytes: 0 };
  for (const [i, entry] of (await listEsp(run, partition)).entries()) {
    if (entry.directory) {
      staged.directories.push(entry.path);
      continue;
    }
    const local = join(into, String(i));
    await run('mcopy', ['-i', partition, `::/${entry.path}`, local], { env: MTOOLS_ENV });
    staged.bytes += (await stat(local)).size;
    if (staged.bytes > maxBytes) throw tooLarge(staged.bytes);
    staged.files.push({ from: local, to: entry.path });
  }
  return staged;
}
