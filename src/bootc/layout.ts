import { deploymentError } from '../errors.ts';

const MiB = 2 ** 20;
/** What IPA leaves outside the root (BIOS boot, ESP, GPT, and the 64 MiB config drive). */
export const RESERVED_MIB = 768;
/** bootc adds a separate 510 MiB /boot with tpm2-luks (spec/bootc.md §4.2 step 9). */
export const LUKS_BOOT_MIB = 510;
/** Below this a root cannot hold even a small bootc image. */
export const MIN_ROOT_MIB = 512;

/**
 * `--root-size` in MiB. IPA reserves 768 MiB in both cases, which with tpm2-luks is more than
 * the disk holds: sfdisk silently shrinks root and the config drive no longer fits
 * (spec/bootc.md §4.3). The extra /boot is reserved too.
 */
export function rootSizeMiB(device: string, diskBytes: number, luks: boolean): number {
  const disk = Math.floor(diskBytes / MiB);
  const root = disk - RESERVED_MIB - (luks ? LUKS_BOOT_MIB : 0);
  if (root < MIN_ROOT_MIB) {
    const need = MIN_ROOT_MIB + RESERVED_MIB + (luks ? LUKS_BOOT_MIB : 0);
    throw deploymentError(`Disk ${device} is too small for a bootc install${luks ? ' with TPM2 LUKS' : ''}: it has ${disk} MiB, the layout needs at least ${need} MiB`);
  }
  return root;
}

/** After the pull: the root must hold the unpacked image. */
export function checkImageFits(device: string, image: string, rootMiB: number, imageBytes: number): void {
  const need = Math.ceil(imageBytes / MiB);
  if (need > rootMiB) {
    throw deploymentError(`Disk ${device} is too small for ${image}: the root partition would have ${rootMiB} MiB, the image needs ${need} MiB unpacked`);
  }
}
