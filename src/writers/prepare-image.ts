import { open } from 'node:fs/promises';
import type { AgentContext } from '../agent-context.ts';
import { realClock } from '../clock.ts';
import { deploymentError } from '../errors.ts';
import { selectRootDevice } from '../hardware/root-device.ts';
import { blockDeviceInfo } from './block-device.ts';
import { HELD_BYTES } from './block-sink.ts';
import { resolveChecksum } from './checksum.ts';
import { writeConfigDrive } from './config-drive.ts';
import { wipePartitionTables } from './device-regions.ts';
import { authorizationFor, type HttpSettings } from './http-client.ts';
import { HttpSource, fetchText, type HttpSourceOptions } from './http-source.ts';
import { isPartitionImage, validateImageInfo, type ImageInfo, type RawImageInfo } from './image-info.ts';
import { moveBackupGptToEnd, readDiskIdentifier, readPartitionTable, rescanPartitions, type PartitionTable } from './partition-table.ts';
import { Progress } from './progress.ts';
import { writeImageToDevice, type WriteImageResult } from './write-image.ts';

/** What the conductor controls about images: Ironic's lookup answer, else the agent's options (spec §3.2). */
export function imageSettings(ctx: AgentContext) {
  const s = ctx.conductor.settings;
  return {
    md5Enabled: s?.md5Enabled ?? ctx.config.md5Enabled,
    permitted: s?.permittedImageFormats ?? ctx.config.permittedImageFormats,
    deepInspection: !(s?.disableDeepImageInspection ?? ctx.config.disableDeepImageInspection),
  };
}

export interface PrepareImageParams {
  image_info?: RawImageInfo | undefined;
  configdrive?: string | null | undefined;
  /** cache_image only: write even if this image id is already on the disk. */
  force?: boolean | undefined;
}

/** A command's or a step's context: `signal` aborts when the machine goes down. */
type Context = AgentContext & { setProgress(progress: unknown): void; readonly signal?: AbortSignal };

/**
 * standby.prepare_image (spec §7.1) for whole-disk images: pick the root device, stream the
 * image on it (unless this image id is already there), check its partition table, add the
 * config drive, record the partition UUIDs and return IPA's message. Any failure after the
 * disk was touched leaves it without a partition table.
 */
export async function prepareImage(ctx: Context, params: PrepareImageParams, mode: 'prepare' | 'cache' = 'prepare'): Promise<string> {
  const settings = imageSettings(ctx);
  const info = validateImageInfo(params.image_info, settings);
  const configdrive = params.configdrive ?? info.configdrive;
  const device = (await selectRootDevice(ctx, { refresh: true })).name;
  if (isPartitionImage(info)) {
    throw deploymentError(
      `Partition images (image_type=partition) are not supported by this agent yet; image ${info.id} cannot be written to ${device}. Deploy a whole-disk image.`,
    );
  }
  const present = ctx.deployment.cachedImageId === info.id && params.force !== true;
  let touched = present;
  let imageSize: number | undefined;
  try {
    let table: PartitionTable;
    if (present) {
      ctx.log.info({ image: info.id, device }, `image ${info.id} is already on ${device}; not writing it again`);
      table = await readTableFromDisk(device);
    } else {
      ctx.deployment.cachedImageId = undefined;
      ctx.deployment.partitionUuids = {};
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
    const rootUuid = await readDiskIdentifier(device);
    ctx.deployment.partitionUuids = { 'root uuid': rootUuid };
    ctx.deployment.cachedImageId = info.id;
    const verb = mode === 'prepare' ? 'written to' : present ? 'already present on' : 'cached to';
    const message = `image (${info.id}) ${verb} device ${device} root_uuid=${rootUuid}`;
    ctx.log.info({ image: info.id, device, rootUuid }, message);
    return message;
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

/** The agent's image download and write for `info` (spec §9.3-§9.5), with progress in the command status. */
export async function writeImage(
  ctx: Context,
  info: ImageInfo,
  device: string,
  settings: ReturnType<typeof imageSettings>,
  beforeCommit?: (head: Buffer, dev: { path: string; logicalBlockSize: number }) => void | Promise<void>,
): Promise<WriteImageResult> {
  const http: HttpSettings = {
    timeoutSeconds: ctx.config.imageDownloadConnectionTimeout,
    insecure: ctx.config.insecure,
    cafile: ctx.config.cafile,
    proxies: info.proxies,
    noProxy: info.noProxy,
    authorization: authorizationFor(info.id, info.authorization, info.basicAuth),
  };
  const maxDuration = ctx.config.imageDownloadMaxDuration;
  const sourceOpts: HttpSourceOptions = {
    imageId: info.id,
    http,
    clock: realClock,
    log: ctx.log,
    signal: ctx.signal,
    retry: {
      retries: ctx.config.imageDownloadConnectionRetries,
      intervalSeconds: ctx.config.imageDownloadConnectionRetryInterval,
      deadline: maxDuration > 0 ? realClock.now() + maxDuration : undefined,
      maxDurationSeconds: maxDuration,
    },
  };
  const expected = await resolveChecksum(info, {
    md5Enabled: settings.md5Enabled,
    fetchText: (url) => fetchText(url, sourceOpts),
    log: ctx.log,
  });
  const progress = new Progress({ image: info.id, log: ctx.log, publish: (report) => ctx.setProgress(report) });
  const result = await writeImageToDevice({
    imageId: info.id,
    device,
    openSource: () => HttpSource.open(info.urls, sourceOpts),
    expected,
    policy: { diskFormat: info.diskFormat, permitted: settings.permitted, deepInspection: settings.deepInspection },
    retries: ctx.config.imageDownloadConnectionRetries,
    retryIntervalSeconds: ctx.config.imageDownloadConnectionRetryInterval,
    run: ctx.run,
    log: ctx.log,
    clock: realClock,
    guard: async () => void (await ctx.diskGuard.check(device)),
    progress,
    beforeCommit,
    signal: ctx.signal,
  });
  ctx.log.info(
    {
      image: info.id, device, seconds: Math.round(result.seconds * 10) / 10, bytes: result.bytes, received: result.receivedBytes,
      mbPerSecond: Math.round(result.bytes / 1e6 / Math.max(result.seconds, 0.001)), format: result.format, compression: result.compression,
      digests: { algorithm: result.algorithm, received: result.received, written: result.written },
    },
    `Image ${info.id} written to device ${device} in ${result.seconds.toFixed(1)} seconds (${result.bytes} bytes).`,
  );
  return result;
}
