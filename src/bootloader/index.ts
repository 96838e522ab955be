import type { BootloaderInstallers } from '../extensions/image.ts';
import { installGrub } from './grub.ts';
import { setupUefiBoot, setupUefiWithoutNvram, type BootloaderOptions } from './uefi.ts';

export type { BootloaderOptions } from './uefi.ts';
export { installGrub } from './grub.ts';
export { namesPartition, setupUefiBoot, setupUefiWithoutNvram } from './uefi.ts';
export { listEsp } from './esp-files.ts';

/** The boot loader installers image.install_bootloader uses (spec §7.3), with `opts` for tests. */
export function bootloaderInstallers(opts: BootloaderOptions = {}): BootloaderInstallers {
  return {
    uefi: (ctx, device, params) => setupUefiBoot(ctx, device, params, opts),
    uefiWithoutNvram: (ctx, device, params) => setupUefiWithoutNvram(ctx, device, params, opts),
    bios: (ctx, device, params) => installGrub(ctx, device, params, opts),
  };
}
