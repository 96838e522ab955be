import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { deploymentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ToolError, type RunCommand } from '../run.ts';
import { probeDevice } from './blkid.ts';
import type { DiskGuard } from './disk-guard.ts';
import type { Role } from './partition-layout.ts';

export interface FormatDeps {
  run: RunCommand;
  diskGuard: DiskGuard;
  log: Logger;
}

interface Mkfs {
  role: Role;
  tool: string;
  args: (partition: string) => string[];
}

/**
 * The filesystems IPA's work_on_disk makes around the root image (spec §9.6): the ESP as
 * vfat `efi-part`, swap labelled `swap1`, the ephemeral partition labelled `ephemeral0`
 * (`-F` for ext*, `-f` for xfs and btrfs, which would otherwise refuse an old signature).
 * `mkfs.<type>` is called directly: the ramdisk has no `mkfs` front end.
 */
export function mkfsPlan(roles: readonly Role[], ephemeralFormat: string | undefined): Mkfs[] {
  const plan: Mkfs[] = [];
  if (roles.includes('efi system partition')) plan.push({ role: 'efi system partition', tool: 'mkfs.vfat', args: (p) => ['-n', 'efi-part', p] });
  if (roles.includes('swap')) plan.push({ role: 'swap', tool: 'mkswap', args: (p) => ['-L', 'swap1', p] });
  if (roles.includes('ephemeral') && ephemeralFormat) {
    const fs = ephemeralFormat;
    const force = fs.startsWith('ext') ? ['-F'] : fs === 'xfs' || fs === 'btrfs' ? ['-f'] : [];
    plan.push({ role: 'ephemeral', tool: `mkfs.${fs}`, args: (p) => [...force, '-L', 'ephemeral0', p] });
  }
  return plan;
}

/**
 * Refuses, before anything is written, a layout whose filesystems this ramdisk cannot make
 * (an xfs ephemeral partition on a ramdisk without xfsprogs would otherwise fail only after
 * the whole image was downloaded and written).
 */
export async function checkMkfsTools(plan: readonly Mkfs[], path = process.env.PATH ?? ''): Promise<void> {
  for (const { tool, role } of plan) {
    const found = await Promise.any(path.split(delimiter).filter(Boolean).map((dir) => access(join(dir, tool), constants.X_OK))).then(() => true, () => false);
    if (!found) throw deploymentError(`Cannot create the ${role} partition's filesystem: ${tool} is not installed in this ramdisk`);
  }
}

/** Formats the planned partitions; each passes the disk guard just before it is formatted. */
export async function formatPartitions(deps: FormatDeps, paths: Partial<Record<Role, string>>, plan: readonly Mkfs[]): Promise<void> {
  for (const step of plan) {
    const partition = paths[step.role];
    if (!partition) throw deploymentError(`the ${step.role} partition is missing from the layout`);
    await mkfs(deps, partition, step.tool, step.args(partition));
  }
}

async function mkfs(deps: FormatDeps, partition: string, tool: string, args: string[]): Promise<void> {
  await deps.diskGuard.check(partition);
  try {
    await deps.run(tool, args);
  } catch (err) {
    if (err instanceof ToolError) throw deploymentError(`Formatting ${partition} (${tool} ${args.join(' ')}) failed: ${err.message}`);
    throw err;
  }
  deps.log.info({ partition, tool, args }, `formatted ${partition}`);
}

/**
 * IPA's block_uuid: the filesystem UUID, else the partition's own UUID (PARTUUID), read
 * from the device itself (`blkid -p`: there is no udev database in the ramdisk).
 */
export async function blockUuid(run: RunCommand, partition: string): Promise<string> {
  const probe = await probeDevice(run, partition);
  const uuid = probe.UUID ?? probe.PART_ENTRY_UUID;
  if (!uuid) throw deploymentError(`Failed to detect the UUID of ${partition}: blkid finds neither a filesystem UUID nor a partition UUID`);
  return uuid;
}
