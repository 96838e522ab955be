import { constants, createWriteStream } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { commandExecution } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';
import { TargetMount } from './mounts.ts';

/** Bounds on what an image's /boot/efi/EFI may make the agent copy (a real one has tens of files). */
export const ASSET_LIMITS = { files: 4096, depth: 16 };

/** Characters a FAT long name cannot hold; mcopy would mangle or ask about them. */
const FAT_INVALID = /["*/:<>?\\|\u0000-\u001f]/;

export interface StagedFile {
  /** The copy in the staging directory. */
  local: string;
  /** Where it goes on the ESP, e.g. `EFI/debian/shimx64.efi`. */
  to: string;
}

export interface StagedAssets {
  files: StagedFile[];
  bytes: number;
  /** What was left out and why (symlinks, special files, names FAT cannot hold). */
  skipped: string[];
}

interface Deps {
  run: RunCommand;
  log: Logger;
}

/** A real directory at `relative` below `root` (no component a symlink), or undefined. */
async function realDirectory(root: string, relative: string): Promise<string | undefined> {
  let path = root;
  for (const part of relative.split('/')) {
    path = join(path, part);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) return undefined;
  }
  return path;
}

/**
 * Copies one regular file out of the mounted image. O_NOFOLLOW and the fstat after open: the
 * name was checked with lstat, and this makes sure the bytes read are that file's; a symlink
 * (which resolves against the ramdisk, not the image: /etc/shadow would be the ramdisk's) or
 * a FIFO is never opened.
 */
async function copyRegular(src: string, dest: string): Promise<number> {
  const input = await open(src, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  let size: number;
  try {
    const st = await input.stat();
    if (!st.isFile()) throw new Error(`${src} is not a regular file`);
    size = st.size;
  } catch (err) {
    await input.close();
    throw err;
  }
  // The read stream closes the handle when it ends or fails.
  await pipeline(input.createReadStream(), createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
  return size;
}

/**
 * IPA's _preserve_efi_assets without running anything from the image: the root filesystem's
 * /boot/efi/EFI tree (what the image's own ESP held when it was built) and, as IPA does,
 * /boot/grub2/grub.cfg and grubenv into each top-level directory of EFI that lacks them, are
 * copied to `staging`. The root partition is mounted read-only, nosuid, nodev, noexec for
 * this and unmounted before returning, so the ESP can be written with the disk guard passed
 * (nothing of the disk mounted). Only regular files and real directories are taken; the
 * total is capped at `maxBytes` (the ESP's size: more could not fit anyway).
 */
export async function stageEfiAssets(deps: Deps, rootPartition: string, fstype: string, staging: string, maxBytes: number): Promise<StagedAssets> {
  const staged: StagedAssets = { files: [], bytes: 0, skipped: [] };
  const mount = await TargetMount.mount(deps.run, rootPartition, fstype, ['ro', 'noexec'], 'read its EFI assets');
  try {
    const efi = await realDirectory(mount.dir, 'boot/efi/EFI');
    if (!efi) return staged;
    const add = async (src: string, to: string) => {
      if (staged.files.length >= ASSET_LIMITS.files) throw commandExecution(`the image's /boot/efi/EFI has more than ${ASSET_LIMITS.files} files; refusing to copy them into the ESP`);
      const local = join(staging, String(staged.files.length));
      staged.bytes += await copyRegular(src, local);
      if (staged.bytes > maxBytes) throw commandExecution(`the image's /boot/efi/EFI holds more than the ESP's ${maxBytes} bytes`);
      staged.files.push({ local, to });
    };
    const walk = async (dir: string, to: string, depth: number) => {
      if (depth > ASSET_LIMITS.depth) throw commandExecution(`the image's /boot/efi/EFI is nested deeper than ${ASSET_LIMITS.depth} levels`);
      const seen = new Set<string>();
      for (const name of (await readdir(dir)).sort()) {
        const src = join(dir, name);
        const where = `/boot/efi/${to}/${name}`;
        // FAT names are case-insensitive: of "a.efi" and "A.EFI" only the first can exist.
        if (FAT_INVALID.test(name) || seen.has(name.toLowerCase())) {
          staged.skipped.push(`${where} (a name FAT cannot hold)`);
          continue;
        }
        seen.add(name.toLowerCase());
        const st = await lstat(src);
        if (st.isDirectory()) await walk(src, `${to}/${name}`, depth + 1);
        else if (st.isFile()) await add(src, `${to}/${name}`);
        else staged.skipped.push(`${where} (${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'})`);
      }
    };
    await walk(efi, 'EFI', 0);
    const grub2 = await realDirectory(mount.dir, 'boot/grub2');
    if (grub2) {
      const vendors = [...new Set(staged.files.map((f) => f.to.split('/')).filter((p) => p.length > 2).map((p) => p[1]!))];
      for (const file of ['grub.cfg', 'grubenv']) {
        const src = join(grub2, file);
        if (!(await lstat(src).catch(() => undefined))?.isFile()) continue;
        for (const vendor of vendors) {
          const to = `EFI/${vendor}/${file}`;
          if (staged.files.some((f) => f.to.toLowerCase() === to.toLowerCase())) continue;
          await add(src, to);
        }
      }
    }
    if (staged.skipped.length > 0) deps.log.warn({ skipped: staged.skipped }, 'left out of the EFI assets copied from the image');
    return staged;
  } finally {
    await mount.release();
  }
}

/** IPA's fstab line for the ESP, tabs included. */
export function espFstabLine(label: 'UUID' | 'PARTUUID', uuid: string): string {
  return `${label}=${uuid}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`;
}

/**
 * The fstab with the ESP line appended, or undefined when `LABEL=uuid` is in it already (IPA's
 * test). IPA appends after whatever the file ends with; a last line without its newline would
 * swallow the entry, so one is added first.
 */
export function fstabWithEsp(current: string, label: 'UUID' | 'PARTUUID', uuid: string): string | undefined {
  if (current.includes(`${label}=${uuid}`)) return undefined;
  const sep = current === '' || current.endsWith('\n') ? '' : '\n';
  return `${current}${sep}${espFstabLine(label, uuid)}`;
}

/**
 * IPA's _append_uefi_to_fstab, so the deployed system mounts its ESP at /boot/efi (grub and
 * kernel updates write there). The root is mounted read-write for this alone, noexec, after
 * the read-only pass that copied the assets: the copy code never holds a writable mount of
 * the tenant's filesystem, and the write is one append to one regular file reached through
 * real directories. No /etc/fstab: nothing to do, as in IPA.
 */
export async function appendEspToFstab(
  deps: Deps, rootPartition: string, fstype: string, label: 'UUID' | 'PARTUUID', uuid: string,
): Promise<{ result: 'appended' | 'present' | 'no fstab' } | { result: 'failed'; reason: string }> {
  let mount: TargetMount;
  try {
    mount = await TargetMount.mount(deps.run, rootPartition, fstype, ['rw', 'noexec'], 'add the ESP to its /etc/fstab');
  } catch (err) {
    return { result: 'failed', reason: err instanceof Error ? err.message : String(err) };
  }
  // A failure inside is a warning (IPA logs it and goes on); one to unmount is not.
  try {
    return { result: await appendTo(mount.dir, label, uuid, deps.log) };
  } catch (err) {
    return { result: 'failed', reason: err instanceof Error ? err.message : String(err) };
  } finally {
    await mount.release();
  }
}

async function appendTo(root: string, label: 'UUID' | 'PARTUUID', uuid: string, log: Logger): Promise<'appended' | 'present' | 'no fstab'> {
  const etc = await realDirectory(root, 'etc');
  const path = etc && join(etc, 'fstab');
  const st = path ? await lstat(path).catch(() => undefined) : undefined;
  if (!path || !st) return 'no fstab';
  if (!st.isFile()) throw commandExecution(`/etc/fstab in the image is ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'}; refusing to write it`);
  const fh = await open(path, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw commandExecution('/etc/fstab in the image is not a regular file; refusing to write it');
    const bytes = await fh.readFile();
    const current = bytes.toString('utf8');
    const next = fstabWithEsp(current, label, uuid);
    if (next === undefined) return 'present';
    await fh.write(Buffer.from(next.slice(current.length), 'utf8'), 0, undefined, bytes.length);
    await fh.sync();
    log.info({ entry: espFstabLine(label, uuid).trim() }, 'Added entry to /etc/fstab for EFI partition auto-mount');
    return 'appended';
  } finally {
    await fh.close();
  }
}
