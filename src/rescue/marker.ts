import { access, rm } from 'node:fs/promises';
import type { RescuePaths } from './paths.ts';

/** finalize_rescue ran in this ramdisk: a restarted agent must not serve again (spec §1.3 step 9). */
export async function isRescued(paths: RescuePaths): Promise<boolean> {
  return access(paths.markerFile).then(() => true, () => false);
}

/**
 * A simulated reboot: a real ramdisk boots with a fresh /etc, without the marker and the
 * password file of the last rescue. The shadow entry keeps its hash: only a real reboot
 * resets it, and the next finalize_rescue replaces it.
 */
export async function forgetRescue(paths: RescuePaths): Promise<void> {
  await rm(paths.markerFile, { force: true });
  await rm(paths.passwordFile, { force: true });
}
