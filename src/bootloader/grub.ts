import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, commandExecution, errorMessage } from '../errors.ts';
import type { InstallBootloaderParams } from '../extensions/image.ts';
import type { CommandContext } from '../extensions/types.ts';
import type { RunOptions } from '../run.ts';
import { mountable } from '../steps/inject-files/partitions.ts';
import type { BlkidProbe } from '../hardware/blkid.ts';
import { findPartitionByUuid, noPartitionWithUuid, rescanPartitions, type DiskPartition } from './esp.ts';
import { TargetMount } from './mounts.ts';
import { ensureBiosBootPartitions } from './raid-bios-boot.ts';
import { isMdDevice, raidHolderDisks } from './raid-esp.ts';
import type { BootloaderOptions } from './uefi.ts';

/** IPA's BIND_MOUNTS; /sys gets a fresh sysfs (IPA's _mount_for_chroot). */
export const BIND_MOUNTS = ['/dev', '/proc', '/run'] as const;

/**
 * The PATH inside the chroot. IPA appends /bin:/usr/sbin:/sbin to the ramdisk's own PATH; the
 * ramdisk's directories mean nothing inside the image, so the standard ones are given alone.
 */
export const CHROOT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** grub-install and grub-mkconfig get this long; a hung tool in the image must not hang the deploy. */
const GRUB_TIMEOUT_SECONDS = 600;

/** The argv of `chroot <root> <bin>-install <device>` (IPA runs the same through /bin/sh -c). */
export function grubInstallArgs(root: string, binary: 'grub' | 'grub2', installDevice: string): string[] {
  return [root, `${binary}-install`, installDevice];
}

/** The argv of IPA's _configure_grub: `<bin>-mkconfig -o /boot/<bin>/grub.cfg` in the chroot. */
export function grubMkconfigArgs(root: string, binary: 'grub' | 'grub2'): string[] {
  return [root, `${binary}-mkconfig`, '-o', `/boot/${binary}/grub.cfg`];
}

/** IPA's environment for the chroot's tools; nothing of the agent's own (tokens, URLs) goes in. */
export function chrootEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: CHROOT_PATH, LC_ALL: 'C', LANG: 'C', ...extra };
}

/**
 * IPA's _install_grub2 for a legacy BIOS target (and PReP on ppc64): mount the root partition,
 * bind /dev, /proc and /run and mount sysfs into it, run grub-install for the disk (the PReP
 * partition, or every holder disk of a software RAID root) and grub-mkconfig inside the
 * image, then unmount everything, also on failure, also what the image's tools mounted
 * themselves. The image's code runs as root
 * here: the caller allows this only with enable_bios_bootloader_install (CVE-2026-43003).
 *
 * Differences from IPA, each on purpose: the image's fstab is not mounted (`mount -a -t vfat`
 * in the chroot mounts whatever devices the tenant's fstab names, and a BIOS grub-install
 * needs none of them); IPA's check "already bootable, skip" (`file -s` heuristics on the boot
 * sector) is not made, grub-install is simply run; grub for UEFI into the ESP is not done (it
 * needs the ESP mounted through the kernel's vfat driver: an untrusted FAT for the kernel to
 * parse, and a mount this agent never makes), the UEFI path copies the image's loaders instead.
 */
export async function installGrub(ctx: CommandContext, device: string, p: InstallBootloaderParams, opts: BootloaderOptions = {}): Promise<void> {
  if (p.efi_system_part_uuid && p.target_boot_mode !== 'bios') {
    throw commandExecution(
      `the EFI system partition of ${device} has no boot loader and the image has none in /boot/efi/EFI; ironic-node-agent does not run grub-install for UEFI ` +
        '(it needs the ESP mounted as vfat by the kernel). Put the loaders in the image (/boot/efi/EFI) or use a whole-disk image.',
    );
  }
  const rootUuid = p.root_uuid;
  if (!rootUuid) throw commandExecution('a root_uuid is needed to install grub');
  const { disk, root, installDevices } = isMdDevice(device) ? await raidTarget(ctx, device, rootUuid, p, opts) : await diskTarget(ctx, device, rootUuid, p, opts);
  const fstype = root.probe.TYPE;
  if (!mountable(fstype)) throw commandExecution(`the root partition ${root.path} has no filesystem grub can be installed from (${fstype ?? 'none found'})`);

  ctx.log.info({ device: disk, root: root.path, installDevices }, `Installing GRUB2 bootloader on device ${disk}`);
  // Not noexec: grub-install and grub-mkconfig are the image's own programs.
  const target = await TargetMount.mount(ctx.run, root.path, fstype!, ['rw'], 'install grub from it');
  let failure: unknown;
  try {
    for (const fs of BIND_MOUNTS) await ctx.run('mount', ['-o', 'bind', fs, await target.mountPoint(fs)]);
    await ctx.run('mount', ['-t', 'sysfs', 'none', await target.mountPoint('/sys')]);
    const binary = (await lstat(join(target.dir, 'usr/sbin/grub2-install')).catch(() => undefined)) ? 'grub2' : 'grub';
    const run = (args: string[], env: Record<string, string> = {}) => {
      const options: RunOptions = { env: chrootEnv(env), cleanEnv: true, timeoutSeconds: GRUB_TIMEOUT_SECONDS, signal: ctx.signal };
      return ctx.run('chroot', args, options);
    };
    ctx.log.info({ disks: installDevices }, `GRUB2 will be installed on disks ${installDevices.join(', ')}`);
    for (const installDevice of installDevices) {
      await run(grubInstallArgs(target.dir, binary, installDevice));
      ctx.log.debug(`GRUB2 successfully installed on device ${installDevice}`);
    }
    // IPA's _configure_grub, with its locale and switches.
    await run(grubMkconfigArgs(target.dir, binary), { GRUB_DISABLE_OS_PROBER: 'true', GRUB_SAVEDEFAULT: 'true' });
    ctx.log.info(`GRUB2 successfully installed on ${disk}`);
  } catch (err) {
    failure = err instanceof AgentError ? err : commandExecution(`Installing GRUB2 boot loader to device ${disk} failed with ${errorMessage(err)}.`);
  }
  try {
    await target.release();
  } catch (err) {
    // Reported, but not in place of the failure that came first.
    if (failure === undefined) throw err;
    ctx.log.error({ err: errorMessage(err) }, 'cleaning up after the failed grub installation failed too');
  }
  if (failure !== undefined) throw failure;
}

interface GrubTarget {
  /** The device the image was written to (a disk or an md array). */
  disk: string;
  root: DiskPartition & { probe: BlkidProbe };
  /** Where grub-install puts the boot code: the disk, its PReP partition, or every RAID holder. */
  installDevices: string[];
}

async function diskTarget(ctx: CommandContext, device: string, rootUuid: string, p: InstallBootloaderParams, opts: BootloaderOptions): Promise<GrubTarget> {
  const disk = await ctx.diskGuard.check(device);
  await rescanPartitions(ctx.run, disk);
  const root = await findPartitionByUuid(ctx.run, disk, rootUuid, opts.sysRoot);
  if (!root) throw noPartitionWithUuid(rootUuid, disk);
  if (!p.prep_boot_part_uuid) return { disk, root, installDevices: [disk] };
  ctx.log.warn('PReP partition support is deprecated and will be removed in a future release. PowerPC (ppc64*) hardware support is being phased out.');
  const prep = await findPartitionByUuid(ctx.run, disk, p.prep_boot_part_uuid, opts.sysRoot);
  if (!prep) throw noPartitionWithUuid(p.prep_boot_part_uuid, disk);
  return { disk, root, installDevices: [prep.path] };
}

/**
 * A software RAID root (IPA's _install_grub2 for an md device): grub goes on every holder
 * disk, so the machine boots from whichever disk the firmware picks; grub-install for the
 * md device itself would leave no disk bootable. The root is found before anything is
 * written. IPA also stops and reassembles the array first "to help grub find it"; here the
 * kernel's view of the array's partitions is refreshed instead (partx), which is what grub
 * needs from it, without taking the array away while it holds the image just written.
 */
async function raidTarget(ctx: CommandContext, md: string, rootUuid: string, p: InstallBootloaderParams, opts: BootloaderOptions): Promise<GrubTarget> {
  if (p.prep_boot_part_uuid) throw commandExecution(`${md} is a software RAID device; ironic-node-agent does not install grub into PReP partitions on software RAID`);
  const holders = await raidHolderDisks(md, opts.sysRoot);
  const disk = await ctx.diskGuard.check(md, { allowedVia: holders });
  await rescanPartitions(ctx.run, disk);
  const root = await findPartitionByUuid(ctx.run, disk, rootUuid, opts.sysRoot);
  if (!root) throw noPartitionWithUuid(rootUuid, disk);
  await ensureBiosBootPartitions(ctx, holders, opts);
  return { disk, root, installDevices: holders };
}
