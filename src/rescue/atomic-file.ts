import { randomBytes } from 'node:crypto';
import { chown, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `text` so that a reader (login, a crash, a power cut) sees the old
 * file or the new one, never half of it: a sibling temporary file, fsync, rename, and the
 * old file's mode and owner (a shadow file must stay 0640 root:shadow or 0600).
 */
export async function replaceFile(path: string, text: string, fallbackMode: number): Promise<void> {
  const old = await stat(path).catch(() => undefined);
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx', old ? old.mode & 0o7777 : fallbackMode);
  try {
    await handle.writeFile(text);
    if (old) await handle.chmod(old.mode & 0o7777);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    if (old) await chown(temp, old.uid, old.gid);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
