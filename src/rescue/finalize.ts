import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { commandExecution, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RescuePaths } from './paths.ts';
import { randomSetting, shaCrypt } from './sha-crypt.ts';
import { setShadowPassword } from './shadow.ts';
import { replaceFile } from './atomic-file.ts';

export interface RescuePassword {
  /** What Ironic sent: a crypt(3) hash when `hashed`, else the password itself. */
  value: string;
  hashed: boolean;
}

/** A crypt(3) hash a login can check: $id$...; anything else locks the user out. */
const CRYPT_HASH = /^\$[0-9a-z]+\$[^:\n]+$/;

/**
 * rescue.finalize_rescue's work (spec §7.5): the hash in IPA's password file for the
 * ramdisk's tooling, in the rescue user's shadow entry when the agent manages it, and only
 * then the marker that keeps a restarted agent from serving the API again. A failure before
 * the marker leaves the agent serving, so Ironic's rescue fails cleanly and can be retried.
 */
export async function finalizeRescue(password: RescuePassword, paths: RescuePaths, log: Logger): Promise<void> {
  // IPA's own choice when Ironic sends a plain password: SHA-256 crypt with a random salt.
  const hash = password.hashed ? password.value : shaCrypt(password.value, randomSetting('5'));
  if (!CRYPT_HASH.test(hash)) log.warn('the rescue password hash does not look like a crypt(3) hash; a login will not accept any password');
  try {
    await mkdir(dirname(paths.passwordFile), { recursive: true, mode: 0o700 });
    await replaceFile(paths.passwordFile, hash, 0o600);
  } catch (err) {
    throw commandExecution(`Rescue Operation failed when writing the hashed rescue password to the password file. Error ${errorMessage(err)}`);
  }
  if (paths.shadowFile) {
    try {
      await setShadowPassword(paths.shadowFile, paths.user, hash);
    } catch (err) {
      throw commandExecution(`Rescue Operation failed when setting the password of user ${paths.user}: ${errorMessage(err)}`);
    }
  }
  try {
    await mkdir(dirname(paths.markerFile), { recursive: true });
    await writeFile(paths.markerFile, '');
  } catch (err) {
    throw commandExecution(`Rescue Operation failed when creating ${paths.markerFile}: ${errorMessage(err)}`);
  }
  log.info({ passwordFile: paths.passwordFile, shadowFile: paths.shadowFile, user: paths.user, marker: paths.markerFile }, 'rescue password set');
}
