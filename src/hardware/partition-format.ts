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

export interface FormatRequest {
  paths: Partial<Record<Role, string>>;
  /** Format the ephemeral partition with this filesystem; undefined keeps it (preserve_ephemeral). */
  ephemeralFormat: string | undefined;
}

/**
 * The filesystems IPA's work_on_disk makes around the root image (spec §9.6): the ESP as
 * vfat `efi-part`, swap labelled `swap1`, the ephemeral partition labelled `ephemeral0`
 * (`-F` for ext*, which would otherwise ask before formatting a partition). Every partition
 * passes the disk guard just before it is formatted.
 */
export async function formatPartitions(deps: FormatDeps, req: FormatRequest): Promise<void> {
  const { paths } = req;
  const esp = paths['efi system partition'];
  if (esp) await mkfs(deps, esp, 'mkfs', ['-t', 'vfat', '-n', 'efi-part', esp]);
  const swap = paths.swap;
  if (swap) await mkfs(deps, swap, 'mkswap', ['-L', 'swap1', swap]);
  const ephemeral = paths.ephemeral;
  if (ephemeral && req.ephemeralFormat) {
    const fs = req.ephemeralFormat;
    const force = fs.startsWith('ext') ? ['-F'] : fs === 'xfs' || fs === 'btrfs' ? ['-f'] : [];
    await mkfs(deps, ephemeral, 'mkfs', ['-t', fs, ...force, '-L', 'ephemeral0', ephemeral]);
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
