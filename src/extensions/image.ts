import { existsSync } from 'node:fs';
import { z } from 'zod';
import { commandExecution, errorMessage } from '../errors.ts';
import { selectRootDevice } from '../hardware/root-device.ts';
import { invalidImage } from '../writers/errors.ts';
import { command, type CommandContext, type Extension } from './types.ts';

const installParams = z.strictObject({
  root_uuid: z.string().nullish(),
  efi_system_part_uuid: z.string().nullish(),
  prep_boot_part_uuid: z.string().nullish(),
  target_boot_mode: z.string().nullish(),
  ignore_bootloader_failure: z.boolean().nullish(),
});
export type InstallBootloaderParams = z.output<typeof installParams>;

/**
 * The boot loader installers (src/bootloader/). Kept pluggable so the decision flow below is
 * tested on its own; without one, a deploy that needs it fails with an error that says so
 * instead of reporting success for a machine that would not boot.
 */
export interface BootloaderInstallers {
  /**
   * The ramdisk booted via UEFI: NVRAM entries for the ESP's loaders (IPA's manage_uefi).
   * False when efibootmgr is missing or the ESP has no loader (IPA then tries grub).
   */
  uefi?(ctx: CommandContext, device: string, params: InstallBootloaderParams): Promise<boolean>;
  /**
   * The target boots UEFI, the ramdisk did not boot via UEFI: no NVRAM to write, so the ESP
   * gets the removable-media loader. False when there is nothing to do it with.
   */
  uefiWithoutNvram?(ctx: CommandContext, device: string, params: InstallBootloaderParams): Promise<boolean>;
  bios?(ctx: CommandContext, device: string, params: InstallBootloaderParams): Promise<void>;
}

export interface ImageExtensionOptions {
  /** Where firmware/efi is looked for: tests make the agent believe it booted via UEFI. */
  sysRoot?: string;
}

const notImplemented = (what: string, device: string) =>
  commandExecution(`${what} is not implemented in ironic-node-agent; cannot set up booting from ${device}`);

/** Boot mode of the running ramdisk, as IPA's get_boot_info decides it. */
export function currentBootMode(sysRoot = '/sys'): 'uefi' | 'bios' {
  return existsSync(`${sysRoot}/firmware/efi`) ? 'uefi' : 'bios';
}

/**
 * image.install_bootloader (spec §7.3): IPA's decision flow. A ramdisk booted via UEFI
 * registers the ESP's loaders in NVRAM. A UEFI target on a ramdisk that did not boot via UEFI
 * (IPA does nothing for UEFI there) gets the removable-media loader on its ESP instead. Then a
 * whole-disk image (root_uuid null or 0x00000000) needs nothing more; a partition image
 * not set up yet goes to grub, only when enable_bios_bootloader_install allows it.
 */
export function imageExtension(installers: BootloaderInstallers = {}, opts: ImageExtensionOptions = {}): Extension {
  return {
    name: 'image',
    commands: {
      install_bootloader: command('async', installParams, async (p, ctx) => {
        const device = (await selectRootDevice(ctx)).name;
        const ignoreFailure = p.ignore_bootloader_failure ?? ctx.config.ignoreBootloaderFailure;
        const bootMode = currentBootMode(opts.sysRoot);
        if (p.prep_boot_part_uuid) {
          ctx.log.warn('PReP partition support is deprecated and will be removed in a future release. PowerPC (ppc64*) hardware support is being phased out.');
        }
        if (p.target_boot_mode && p.target_boot_mode !== bootMode) {
          ctx.log.warn(
            { target: p.target_boot_mode, current: bootMode },
            `Boot mode mismatch: target boot mode is ${p.target_boot_mode}, current boot mode is ${bootMode}. Installing boot loader may fail or work incorrectly.`,
          );
        }
        try {
          if (bootMode === 'uefi') {
            if (!installers.uefi) throw notImplemented('Registering the image\'s UEFI boot loader with efibootmgr', device);
            if (await installers.uefi(ctx, device, p)) return null;
          } else if (p.target_boot_mode === 'uefi') {
            if (!installers.uefiWithoutNvram) throw notImplemented('Setting up the UEFI removable-media boot loader', device);
            if (await installers.uefiWithoutNvram(ctx, device, p)) return null;
          }
        } catch (err) {
          ctx.log.error({ err: errorMessage(err) }, `Error setting up bootloader. Error ${errorMessage(err)}`);
          if (!ignoreFailure) throw err;
        }
        if (!p.root_uuid || p.root_uuid === '0x00000000') {
          ctx.log.info('Not using grub2-install since root UUID is not provided. Assuming a whole disk image');
          return null;
        }
        const biosAllowed = ctx.conductor.settings?.enableBiosBootloaderInstall ?? ctx.config.enableBiosBootloaderInstall;
        if (!biosAllowed) {
          const msg = 'Install of legacy BIOS bootloaders disabled by CONF.enable_bios_bootloader_install as part of CVE-2026-43003 mitigation.';
          ctx.log.error(msg);
          if (!ignoreFailure) throw invalidImage(msg);
          return null;
        }
        try {
          if (!installers.bios) throw notImplemented('Installing a legacy BIOS boot loader (grub-install)', device);
          await installers.bios(ctx, device, p);
        } catch (err) {
          ctx.log.error({ err: errorMessage(err) }, `Error setting up bootloader. Error ${errorMessage(err)}`);
          if (!ignoreFailure) throw err;
        }
        return null;
      }),
    },
  };
}
