import { machine } from 'node:os';
import type { AgentContext } from '../agent-context.ts';
import { deploymentError } from '../errors.ts';
import { currentBootMode } from '../extensions/image.ts';
import { partitionPath, planLayout, type Layout, type Role } from '../hardware/partition-layout.ts';
import { applyLayout } from '../hardware/partition-apply.ts';
import { blockUuid, checkMkfsTools, formatPartitions, mkfsPlan } from '../hardware/partition-format.ts';
import { readPartitionTable } from '../hardware/partitions.ts';
import { blockDeviceInfo, type BlockDeviceInfo } from './block-device.ts';
import { HELD_BYTES, MiB } from './block-sink.ts';
import { copyImage, loadConfigDrive } from './config-drive.ts';
import { wipeImage } from './device-regions.ts';
import { ImageError } from './errors.ts';
import type { ImageInfo } from './image-info.ts';
import type { ImageTarget } from './image-target.ts';
import { partitionImageSpec, type PartitionImageSpec } from './partition-image-info.ts';
import { rescanPartitions } from './partition-table.ts';
import { writeImage, type ImageContext, type imageSettings } from './image-download.ts';

/** get_partition_uuids for a partition image (spec §9.6, §9.8). */
export type PartitionImageUuids = {
  partitions: Partial<Record<Role, string>>;
  'root uuid': string;
  'efi system partition uuid': string | null;
  'PReP Boot partition uuid'?: string | null;
};

/**
 * A partition image (spec §9.6, §9.5): the layout IPA's work_on_disk builds around a root
 * filesystem image, in an order that keeps the disk unbootable until the image is verified.
 *
 * 1. Everything is checked before the first write: image_info's sizes, the node's boot mode
 *    and disk label, the config drive, the layout against the disk.
 * 2. The disk's first and last MiB are zeroed (no partition table) and the image streams
 *    through the disk device straight into the root partition's future extent, with the
 *    data path of whole-disk images (formats, checksums, resume, progress); its first MiB
 *    (the filesystem superblock) is held back until the checksum matched.
 * 3. Only then is the partition table written, the ESP, swap and ephemeral partitions
 *    formatted and the config drive copied.
 *
 * With preserve_ephemeral the existing table stays: the image goes into the existing root
 * partition, and a failure zeroes only the root's superblock areas, never the table that
 * holds the preserved data.
 */
export async function writePartitionImage(
  ctx: ImageContext,
  info: ImageInfo,
  device: string,
  configdrive: string | undefined,
  settings: ReturnType<typeof imageSettings>,
): Promise<PartitionImageUuids> {
  const node = info.nodeUuid ?? 'local';
  const spec = partitionImageSpec(info.raw, ctx.conductor.node, currentBootMode());
  const iso = configdrive ? await loadConfigDrive(ctx, configdrive, node) : undefined;
  const dev = await blockDeviceInfo(device);
  const arch = machine();
  const layout = planLayout({
    diskBytes: dev.size, rootMb: spec.rootMb, swapMb: spec.swapMb, ephemeralMb: spec.ephemeralMb, configDriveBytes: iso?.length,
    bootMode: spec.bootMode, diskLabel: spec.diskLabel, cpuArch: arch, efiSystemPartitionSizeMb: ctx.config.efiSystemPartitionSize,
  });
  // The ephemeral filesystem is kept on a rebuild (preserve_ephemeral).
  const mkfs = mkfsPlan(layout.partitions.map((p) => p.role), spec.preserveEphemeral ? undefined : spec.ephemeralFormat);
  await checkMkfsTools(mkfs);
  const target = spec.preserveEphemeral ? await preservedRoot(ctx, dev, layout) : newRoot(dev, layout);
  ctx.log.info(
    { node, device, label: layout.label, bootMode: spec.bootMode, partitions: layout.partitions, preserveEphemeral: spec.preserveEphemeral },
    `partition image ${info.id}: ${layout.label} layout on ${device}, root ${spec.rootMb} MiB at ${target.offset / MiB} MiB`,
  );

  // A failed write cleans up after itself (the writers' abort); from here on, this does.
  const { bytes: imageSize } = await writeImage(ctx, info, device, settings, undefined, {
    target: () => target,
    tooLarge: (reason) => rootTooSmall(`${reason}. Root size: ${spec.rootMb} MB`),
  });
  try {
    const paths = await applyLayout(ctx, device, layout, { preserveEphemeral: spec.preserveEphemeral });
    ctx.log.info({ node, device, partitions: paths }, `Successfully completed the disk device ${device} partitioning for node ${node}`);
    if (iso) {
      const partition = paths.configdrive!;
      await ctx.diskGuard.check(partition);
      await copyImage(partition, iso);
      ctx.log.info({ node, partition }, `Configdrive for node ${node} successfully copied onto partition ${partition}`);
    }
    await formatPartitions(ctx, paths, mkfs);
    await rescanPartitions(ctx.run, device, ctx.log);
    return await uuidsOf(ctx, paths, arch);
  } catch (err) {
    await wipeAfterFailure(ctx, dev, target, imageSize, spec);
    throw err;
  }
}

/** The root partition as planned: the table does not exist yet, so everything is ours. */
function newRoot(dev: BlockDeviceInfo, layout: Layout): ImageTarget {
  const root = layout.partitions.find((p) => p.role === 'root')!;
  // A qcow2 file may be staged up to the disk's end: the table is written after the conversion.
  return { offset: root.startMib * MiB, size: root.sizeMib * MiB, ownsTables: true, stagingEnd: dev.size };
}

/**
 * preserve_ephemeral: the partitions of the earlier deploy must be there (IPA's messages
 * when not); the image goes into the existing root partition, and a qcow2 may be staged
 * only in free space after it, never over another partition or the backup GPT.
 */
async function preservedRoot(ctx: AgentContext, dev: BlockDeviceInfo, layout: Layout): Promise<ImageTarget> {
  const table = await readPartitionTable(ctx.run, dev.path);
  const entries = table?.partitions ?? [];
  const byNumber = new Map(entries.map((e) => [Number(/(\d+)$/.exec(e.node)?.[1]), e]));
  for (const p of layout.partitions) {
    if (byNumber.has(p.number)) continue;
    const path = partitionPath(dev.path, p.number);
    throw deploymentError(p.role === 'root' ? `Root device '${path}' not found` : `'${p.role}' device '${path}' not found`);
  }
  const sector = table!.sectorSize;
  const rootPlan = layout.partitions.find((p) => p.role === 'root')!;
  const root = byNumber.get(rootPlan.number)!;
  const offset = root.start * sector;
  const end = offset + root.size * sector;
  const next = Math.min(...entries.map((e) => e.start * sector).filter((start) => start >= end), dev.size - HELD_BYTES);
  return { offset, size: root.size * sector, ownsTables: false, stagingEnd: Math.max(end, next) };
}

/** IPA's "Root partition is too small for requested image" (InvalidCommandParamsError), not retried. */
function rootTooSmall(details: string): ImageError {
  return new ImageError('InvalidCommandParamsError', 400, 'Invalid command parameters', `Root partition is too small for requested image: ${details}`, false);
}

/** IPA's result: the partitions, the root filesystem's UUID and the ESP's (spec §9.6). */
async function uuidsOf(ctx: AgentContext, paths: Partial<Record<Role, string>>, arch: string): Promise<PartitionImageUuids> {
  const uuid = (role: Role) => (paths[role] ? blockUuid(ctx.run, paths[role]) : Promise.resolve(null));
  const uuids: PartitionImageUuids = {
    partitions: paths,
    'root uuid': (await uuid('root'))!,
    'efi system partition uuid': await uuid('efi system partition'),
  };
  if (arch.startsWith('ppc')) uuids['PReP Boot partition uuid'] = await uuid('PReP Boot partition');
  return uuids;
}

async function wipeAfterFailure(ctx: AgentContext, dev: BlockDeviceInfo, target: ImageTarget, imageSize: number, spec: PartitionImageSpec): Promise<void> {
  try {
    await ctx.diskGuard.check(dev.path);
    await wipeImage(dev, target, imageSize, ctx.log);
    await rescanPartitions(ctx.run, dev.path, ctx.log);
    ctx.log.warn(
      { device: dev.path, preserveEphemeral: spec.preserveEphemeral },
      spec.preserveEphemeral
        ? 'deploy failed: the root partition\'s superblock areas wiped (the table and the ephemeral partition are kept)'
        : 'deploy failed: both partition tables and the root superblock wiped, the disk cannot boot',
    );
  } catch (err) {
    ctx.log.error({ device: dev.path, err: (err as Error).message }, 'could not wipe the disk after a failed deploy');
  }
}
