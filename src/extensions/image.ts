import { existsSync } from 'node:fs';
import { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';
import { commandExecution, errorMessage } from '../errors.ts';
import { selectRootDevice } from '../hardware/root-device.ts';
import { invalidImage } from '../writers/errors.ts';
import { command, type Extension } from './types.ts';

const installParams = z.strictObject({
  root_uuid: z.string().nullish(),
  efi_system_part_uuid: z.string().nullish(),
  prep_boot_part_uuid: z.string().nullish(),
  target_boot_mode: z.string().nullish(),
  ignore_bootloader_failure: z.boolean().nullish(),
});
export type InstallBootloaderParams = z.output<typeof installParams>;

/**
 * The boot loader installers: UEFI boot entries (efibootmgr, from the image's ESP) and
 * legacy BIOS (grub-install in a chroot). They belong to the partition-image work (issue 9);
 * until one is plugged in, a deploy that needs it fails with an error that says so, instead
 * of reporting success for a machine that would not boot.
 */
export interface BootloaderInstallers {
  /** Returns false when the ESP has no boot loader (IPA then falls through to the BIOS path). */
  uefi?(ctx: AgentContext, device: string, params: InstallBootloaderParams): Promise<boolean>;
  bios?(ctx: AgentContext, device: string, params: InstallBootloaderParams): Promise<void>;
}

const notImplemented = (what: string, device: string) =>
  commandExecution(`${what} is not implemented in ironic-node-agent yet (partition images and boot loaders are issue 9); cannot set up booting from ${device}`);

/** Boot mode of the running ramdisk, as IPA's get_boot_info decides it. */
export function currentBootMode(sysRoot = '/sys'): 'uefi' | 'bios' {
  return existsSync(`${sysRoot}/firmware/efi`) ? 'uefi' : 'bios';
}

function hasEfibootmgr(): boolean {
  return ['/usr/sbin/efibootmgr', '/usr/bin/efibootmgr', '/sbin/efibootmgr', '/bin/efibootmgr'].some((p) => existsSync(p));
}

/**
 * image.install_bootloader (spec §7.3): IPA's decision flow. A whole-disk image (root_uuid
 * null or 0x00000000) on a ramdisk that did not boot through UEFI needs nothing: success
 * without touching the disk, which is what Ironic's `direct` deploy asks after every
 * whole-disk deploy in UEFI mode.
 */
export function imageExtension(installers: BootloaderInstallers = {}): Extension {
  return {
    name: 'image',
    commands: {
      install_bootloader: command('async', installParams, async (p, ctx) => {
        const device = (await selectRootDevice(ctx)).name;
        const ignoreFailure = p.ignore_bootloader_failure ?? ctx.config.ignoreBootloaderFailure;
        const bootMode = currentBootMode();
        if (p.target_boot_mode && p.target_boot_mode !== bootMode) {
          ctx.log.warn(
            { target: p.target_boot_mode, current: bootMode },
            `Boot mode mismatch: target boot mode is ${p.target_boot_mode}, current boot mode is ${bootMode}. Installing boot loader may fail or work incorrectly.`,
          );
        }
        try {
          if (bootMode === 'uefi') {
            if (!hasEfibootmgr()) {
              ctx.log.warn('efibootmgr is not available in the ramdisk');
            } else {
              if (!installers.uefi) throw notImplemented('Registering the image\'s UEFI boot loader with efibootmgr', device);
              if (await installers.uefi(ctx, device, p)) return null;
            }
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
