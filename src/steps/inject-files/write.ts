import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { deploymentError } from '../../errors.ts';
import { pathParts, type InjectFile } from './files.ts';

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes (or deletes) one file under `root`, the mount point of its partition. Every
 * directory on the way is checked with lstat: a symlink anywhere on the path is refused,
 * because on the target it may point out of the partition (or into the ramdisk, here).
 * The file is opened with O_NOFOLLOW for the same reason. `label` names the partition in messages.
 */
export async function placeFile(root: string, file: InjectFile, content: Buffer | undefined, label: string): Promise<'written' | 'deleted' | 'absent'> {
  const parts = pathParts(file.path);
  const name = parts.pop();
  if (name === undefined) throw deploymentError(`inject_files: ${file.source}.path "${file.path}" names no file`);
  let dir = root;
  let shown = '';
  for (const [i, part] of parts.entries()) {
    const leaf = i === parts.length - 1;
    dir = join(dir, part);
    shown += `/${part}`;
    const st = await lstatOrUndefined(dir);
    if (st?.isSymbolicLink()) throw deploymentError(`inject_files: ${shown} is a symlink on ${label}; refusing to follow it for ${file.path}`);
    if (st && !st.isDirectory()) throw deploymentError(`inject_files: ${shown} on ${label} is not a directory (needed for ${file.path})`);
    if (!st) {
      if (file.deleted) return 'absent';
      // dirmode is for the file's own directory, as IPA's makedirs(mode=dirmode) applies it;
      // chmod because mkdir's mode is filtered by the umask.
      const mode = leaf ? (file.dirmode ?? 0o755) : 0o755;
      await mkdir(dir, { mode });
      if (leaf && file.dirmode !== undefined && file.dirmode !== null) await chmod(dir, file.dirmode);
    }
  }
  const target = join(dir, name);
  const existing = await lstatOrUndefined(target);
  if (existing?.isSymbolicLink() && !file.deleted) throw deploymentError(`inject_files: ${file.path} is a symlink on ${label}; refusing to write through it`);
  if (existing?.isDirectory()) throw deploymentError(`inject_files: ${file.path} is a directory on ${label}`);
  // A FIFO would block the open (and the step, and the unmount) forever; device nodes and
  // sockets are not files either. Only a regular file is replaced.
  if (existing && !existing.isFile() && !existing.isSymbolicLink()) notRegular(file, label);
  if (file.deleted) {
    if (!existing) return 'absent';
    await unlink(target);
    return 'deleted';
  }
  // O_NONBLOCK: should a FIFO appear after the lstat, the open fails instead of waiting for a reader.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const fh = await open(target, flags, file.mode ?? 0o644);
  try {
    if (!(await fh.stat()).isFile()) notRegular(file, label);
    await fh.writeFile(content ?? Buffer.alloc(0));
    if (file.mode !== undefined && file.mode !== null) await fh.chmod(file.mode);
    if ((file.owner ?? null) !== null || (file.group ?? null) !== null) await fh.chown(file.owner ?? -1, file.group ?? -1);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return 'written';
}


function notRegular(file: InjectFile, label: string): never {
  throw deploymentError(`inject_files: ${file.path} on ${label} is not a regular file; refusing to write into it`);
}
