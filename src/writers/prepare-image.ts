import { open } from 'node:fs/promises';
import type { AgentContext, DeploymentState } from '../agent-context.ts';
import { invalidCommandParams } from '../errors.ts';
import { selectRootDevice } from '../hardware/root-device.ts';
import { blockDeviceInfo } from './block-device.ts';
import { HELD_BYTES } from './block-sink.ts';
import { writeConfigDrive } from './config-drive.ts';
import { wipePartitionTables } from './device-regions.ts';
import { imageSettings, writeImage, type ImageContext } from './image-download.ts';
import { ImageInfoSchema, isPartitionImage, validateImageInfo, type ImageInfo, type RawImageInfo } from './image-info.ts';
import { writePartitionImage } from './partition-image.ts';
import { moveBackupGptToEnd, readDiskIdentifier, readPartitionTable, rescanPartitions, type PartitionTable } from './partition-table.ts';

export interface PrepareImageParams {
  image_info?: RawImageInfo | undefined;
  configdrive?: string | null | undefined;
  /** cache_image only: write even if this image id is already on the disk. */
  force?: boolean | undefined;
}

/**
 * standby.prepare_image (spec §7.1): pick the root device, write the image on it (unless
 * this image id is already there), record the partition UUIDs and return IPA's message.
 * Whole-disk images: check the partition table, add the config drive. Partition images:
 * writePartitionImage builds the layout around the image. Any failure after the disk was
 * touched leaves it without a partition table.
 */
export async function prepareImage(ctx: ImageContext, params: PrepareImageParams, mode: 'prepare' | 'cache' = 'prepare'): Promise<string> {
  const settings = imageSettings(ctx);
  const info = validateImageInfo(params.image_info, settings);
  const configdrive = params.configdrive ?? info.configdrive;
  const device = (await selectRootDevice(ctx, { refresh: true })).name;
  const present = ctx.deployment.cachedImageId === info.id && params.force !== true;
  if (present) {
    ctx.log.info({ image: info.id, device }, `image ${info.id} is already on ${device}; not writing it again`);
  } else {
    ctx.deployment.cachedImageId = undefined;
    ctx.deployment.partitionUuids = {};
  }
  if (isPartitionImage(info)) {
    if (!present) ctx.deployment.partitionUuids = await writePartitionImage(ctx, info, device, configdrive, settings);
  } else {
    ctx.deployment.partitionUuids = await prepareWholeDisk(ctx, info, device, configdrive, settings, present);
  }
  ctx.deployment.cachedImageId = info.id;
  const verb = mode === 'prepare' ? 'written to' : present ? 'already present on' : 'cached to';
  const message = resultMessage(info, verb, device, ctx.deployment.partitionUuids);
  ctx.log.info({ image: info.id, device, partitionUuids: ctx.deployment.partitionUuids }, message);
  return message;
}

/**
 * The plugin API's imageWriter: an image a plugin step writes to a device it chose, with
 * prepare_image's validation, data path and partition-table rules, after the disk guard
 * allowed the device. The deployment record (get_partition_uuids) is not updated: the
 * plugin's device need not be the root device. Returns the partition UUIDs.
 */
export async function writeImageTo(ctx: ImageContext, imageInfo: unknown, device: string, configdrive?: string): Promise<DeploymentState['partitionUuids']> {
  const parsed = ImageInfoSchema.safeParse(imageInfo);
  if (!parsed.success) throw invalidCommandParams(`image_info: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const settings = imageSettings(ctx);
  const info = validateImageInfo(parsed.data, settings);
  const disk = await ctx.diskGuard.check(device);
  const drive = configdrive ?? info.configdrive;
  return isPartitionImage(info) ? writePartitionImage(ctx, info, disk, drive, settings) : prepareWholeDisk(ctx, info, disk, drive, settings, false);
}

/** IPA's _message_format (spec §9.8): the ESP's UUID is added for UEFI deploys that have one. */
function resultMessage(info: ImageInfo, verb: string, device: string, uuids: DeploymentState['partitionUuids']): string {
  const esp = uuids['efi system partition uuid'];
  const efi = info.deployBootMode === 'uefi' && typeof esp === 'string' ? ` efi_system_partition_uuid=${esp}` : '';
  return `image (${info.id}) ${verb} device ${device} root_uuid=${String(uuids['root uuid'])}${efi}`;
}

/** A whole-disk image: written (unless present), its table validated, the config drive added. */
async function prepareWholeDisk(
  ctx: ImageContext,
  info: ImageInfo,
  device: string,
  configdrive: string | undefined,
  settings: ReturnType<typeof imageSettings>,
  present: boolean,
): Promise<DeploymentState['partitionUuids']> {
  let touched = present;
  let imageSize: number | undefined;
  try {
    let table: PartitionTable;
    if (present) {
      table = await readTableFromDisk(device);
    } else {
      let parsed: PartitionTable | undefined;
      const result = await writeImage(ctx, info, device, settings, (head, dev) => {
        parsed = readPartitionTable(head, dev.logicalBlockSize, dev.path);
      });
      touched = true;
      imageSize = result.bytes;
      table = parsed!;
      await rescanPartitions(ctx.run, device, ctx.log);
      await ctx.diskGuard.check(device);
      if (await moveBackupGptToEnd(device, result.head, table, result.device.size, result.device.logicalBlockSize)) {
        ctx.log.info({ device }, 'moved the backup GPT to the end of the disk');
        await rescanPartitions(ctx.run, device, ctx.log);
      }
    }
    ctx.log.info({ device, table: table.type, partitions: table.partitions }, 'partition table validated');
    if (configdrive) {
      await writeConfigDrive(ctx, device, configdrive, { nodeUuid: info.nodeUuid ?? 'local', rebuild: ctx.config.configDriveRebuild });
    }
    return { 'root uuid': await readDiskIdentifier(device) };
  } catch (err) {
    if (touched) await wipe(ctx, device, imageSize);
    throw err;
  }
}

async function wipe(ctx: AgentContext, device: string, imageSize: number | undefined): Promise<void> {
  ctx.deployment.cachedImageId = undefined;
  ctx.deployment.partitionUuids = {};
  try {
    await ctx.diskGuard.check(device);
    const info = await blockDeviceInfo(device);
    await wipePartitionTables(info, imageSize, ctx.log);
    await rescanPartitions(ctx.run, device, ctx.log);
    ctx.log.warn({ device }, 'deploy failed: both partition tables wiped, the disk cannot boot');
  } catch (err) {
    ctx.log.error({ device, err: (err as Error).message }, 'could not wipe the partition tables after a failed deploy');
  }
}

async function readTableFromDisk(device: string): Promise<PartitionTable> {
  const info = await blockDeviceInfo(device);
  const handle = await open(device, 'r');
  try {
    const head = Buffer.alloc(Math.min(HELD_BYTES, info.size));
    await handle.read(head, 0, head.length, 0);
    return readPartitionTable(head, info.logicalBlockSize, device);
  } finally {
    await handle.close();
  }
}
