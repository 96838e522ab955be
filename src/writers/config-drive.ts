import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';
import { deploymentError, errorMessage } from '../errors.ts';
import { blockDeviceInfo } from './block-device.ts';
import { rebuildConfigDriveAsVfat } from './config-drive-vfat.ts';
import { bodyExcerpt, dispatcherFor } from './http-client.ts';
import { rescanPartitions } from './partition-table.ts';

/**
 * The config drive of a whole-disk image (spec §9.7): a `config-2` partition at the end of
 * the disk holding the ISO 9660 image Ironic sends (gzip + base64, or a URL to it). Used by
 * `standby.prepare_image`, and meant for the bootc and partition-image writers too.
 */
export const CONFIG_DRIVE_LABEL = 'config-2';
export const MAX_CONFIG_DRIVE_BYTES = 64 * 2 ** 20;
const MiB = 2 ** 20;
/** The MBR partition table cannot address past 2 TiB. */
const MBR_LIMIT_MIB = 2 * 1024 * 1024;

export interface ConfigDriveOptions {
  /** For messages, as IPA's `node_uuid` (default `local`). */
  nodeUuid?: string;
  /** Always rebuild as vfat `CONFIG-2` instead of copying the ISO (IPA's config_drive_rebuild). */
  rebuild?: boolean;
}

/** Writes `configdrive` into a `config-2` partition of `device` (created at its end unless one exists). */
export async function writeConfigDrive(ctx: AgentContext, device: string, configdrive: string, opts: ConfigDriveOptions = {}): Promise<{ partition: string }> {
  const node = opts.nodeUuid ?? 'local';
  const iso = await loadConfigDrive(ctx, configdrive, node);
  const mib = Math.ceil(iso.length / MiB);
  if (iso.length > MAX_CONFIG_DRIVE_BYTES) {
    throw deploymentError(`Config drive size exceeds maximum limit of 64MiB. Size of the given config drive is ${mib} MiB for node ${node}.`);
  }
  try {
    await ctx.diskGuard.check(device);
    const partition = await findOrCreatePartition(ctx, device, node);
    const info = await blockDeviceInfo(partition);
    // ISO 9660 has 2 KiB sectors; a 4K-native disk cannot mount it (spec §9.7 step 6).
    if (opts.rebuild || info.logicalBlockSize > 2048) {
      await rebuildConfigDriveAsVfat(ctx, partition, iso);
    } else {
      await copyImage(partition, iso);
    }
    await rescanPartitions(ctx.run, device, ctx.log);
    ctx.log.info({ node, partition, bytes: iso.length }, `Configdrive for node ${node} successfully copied onto partition ${partition}`);
    return { partition };
  } catch (err) {
    if (err instanceof Error && err.name === 'DeploymentError') throw err;
    throw deploymentError(`Failed to create config drive on disk ${device} for node ${node}. Error: ${errorMessage(err)}`);
  }
}

const BASE64 = /^[A-Za-z0-9+/=\s]*$/;

/**
 * The ISO image: fetched if `configdrive` is a URL, then base64-decoded and gunzipped (IPA's
 * get_configdrive). Whole-disk images cap it at 64 MiB (§9.7); the check is on the gunzip
 * itself, so an oversized drive is refused without being held in memory.
 */
export async function loadConfigDrive(ctx: AgentContext, configdrive: string, node: string): Promise<Buffer> {
  const isUrl = /^https?:\/\//.test(configdrive);
  let data: Buffer | string = configdrive;
  if (isUrl) data = await downloadConfigDrive(ctx, configdrive, node);
  let compressed: Buffer;
  const text = typeof data === 'string' ? data : data.toString('latin1');
  if (BASE64.test(text) && text.trim() !== '') {
    compressed = Buffer.from(text, 'base64');
  } else if (typeof data !== 'string') {
    ctx.log.debug({ node }, `Config drive for node ${node} is not base64 encoded, assuming binary`);
    return data;
  } else {
    throw deploymentError(`Config drive for node ${node} is not base64 encoded or the content is malformed. Error: invalid base64 characters.`);
  }
  try {
    return gunzipSync(compressed, { maxOutputLength: MAX_CONFIG_DRIVE_BYTES + 1 });
  } catch (err) {
    if (err instanceof RangeError) {
      throw deploymentError(`Config drive size exceeds maximum limit of 64MiB. Size of the given config drive is more than 64 MiB for node ${node}.`);
    }
    throw deploymentError(`Encountered error while decompressing and writing config drive for node ${node}. Error: ${errorMessage(err)}`);
  }
}

async function downloadConfigDrive(ctx: AgentContext, url: string, node: string): Promise<Buffer> {
  const dispatcher = await dispatcherFor(new URL(url), {
    timeoutSeconds: ctx.config.imageDownloadConnectionTimeout, insecure: ctx.config.insecure, cafile: ctx.config.cafile,
    proxies: {}, noProxy: undefined, authorization: undefined,
  });
  let response;
  try {
    const u = new URL(url);
    response = await dispatcher.request({ origin: u.origin, path: `${u.pathname}${u.search}`, method: 'GET' });
  } catch (err) {
    throw deploymentError(`Can't download the configdrive content for node ${node} from '${url}'. Reason: ${errorMessage(err)}`);
  }
  if (response.statusCode >= 400) {
    throw deploymentError(
      `Can't download the configdrive content for node ${node} from '${url}'. Got status code ${response.statusCode}, response body ${await bodyExcerpt(response.body)}`,
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Base64 of at most 64 MiB gzip'd is well under 96 MiB; refuse anything bigger without holding it.
    if (size > 96 * MiB) throw deploymentError(`Config drive for node ${node} downloaded from '${url}' is larger than 96 MiB.`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const SfdiskJson = z.object({
  partitiontable: z.object({
    label: z.string(),
    sectorsize: z.number().optional(),
    partitions: z.array(z.looseObject({ node: z.string(), start: z.number(), size: z.number(), uuid: z.string().optional() })).optional(),
  }),
});
type PartitionTableJson = z.output<typeof SfdiskJson>['partitiontable'];

async function readTable(ctx: AgentContext, device: string): Promise<PartitionTableJson> {
  const out = await ctx.run('sfdisk', ['--json', device]);
  return SfdiskJson.parse(JSON.parse(out)).partitiontable;
}

async function labelOf(ctx: AgentContext, partition: string): Promise<string | undefined> {
  try {
    return (await ctx.run('blkid', ['-p', '-s', 'LABEL', '-o', 'value', partition])).trim() || undefined;
  } catch {
    return undefined; // no filesystem
  }
}

/** The existing `config-2` partition, or a new one at the end of the disk (spec §9.7 steps 2-5). */
async function findOrCreatePartition(ctx: AgentContext, device: string, node: string): Promise<string> {
  await rescanPartitions(ctx.run, device, ctx.log);
  const table = await readTable(ctx, device);
  const parts = table.partitions ?? [];
  const labelled: string[] = [];
  for (const p of parts) {
    if ((await labelOf(ctx, p.node))?.toLowerCase() === CONFIG_DRIVE_LABEL) labelled.push(p.node);
  }
  if (labelled.length > 1) {
    throw deploymentError(`More than one config drive exists on device ${device} for node ${node}: ${labelled.join(', ')}`);
  }
  if (labelled.length === 1) {
    ctx.log.info({ node, partition: labelled[0] }, `Configdrive for node ${node} exists at ${labelled[0]}`);
    return labelled[0]!;
  }

  let created: string | undefined;
  if (table.label === 'gpt') {
    await ctx.run('sgdisk', ['-e', device]);
    const uuid = randomUUID();
    await ctx.run('sgdisk', ['-n', '0:-64MB:0', '-u', `0:${uuid}`, device]);
    await rescanPartitions(ctx.run, device, ctx.log);
    created = (await readTable(ctx, device)).partitions?.find((p) => p.uuid?.toLowerCase() === uuid)?.node;
    if (!created) {
      throw deploymentError(`Failed to create config drive on disk ${device} for node ${node}. Partition with UUID ${uuid} has not been found after creation.`);
    }
  } else {
    const primary = parts.filter((p) => Number(/(\d+)$/.exec(p.node)?.[1]) <= 4).length;
    if (primary > 3) {
      throw deploymentError(`Config drive cannot be created for node ${node}. Disk (${device}) uses MBR partitioning and already has ${primary} primary partitions.`);
    }
    const sizeMiB = Math.floor((await blockDeviceInfo(device)).size / MiB);
    const [start, end] = sizeMiB > MBR_LIMIT_MIB
      ? [`${MBR_LIMIT_MIB - 64 - 1}MiB`, `${MBR_LIMIT_MIB - 1}MiB`]
      : ['-64MiB', '-0'];
    if (sizeMiB > MBR_LIMIT_MIB) ctx.log.warn({ node, device }, `Disk size is larger than 2TB for node ${node}. Creating config drive at the end of the disk ${device}.`);
    await ctx.run('parted', ['-a', 'optimal', '-s', '--', device, 'mkpart', 'primary', 'fat32', start, end]);
    await rescanPartitions(ctx.run, device, ctx.log);
    const before = new Set(parts.map((p) => p.node));
    const added = ((await readTable(ctx, device)).partitions ?? []).filter((p) => !before.has(p.node));
    if (added.length !== 1) {
      throw deploymentError(`Disk partitioning failed on device ${device}. Unable to retrieve config drive partition information.`);
    }
    created = added[0]!.node;
  }
  for (let attempt = 0; attempt < 15 && !existsSync(created); attempt++) await delay(1000);
  if (!existsSync(created)) throw deploymentError(`The config drive partition ${created} did not appear on node ${node}.`);
  ctx.log.info({ node, partition: created }, 'config drive partition created');
  return created;
}

/** Writes the ISO onto the partition (IPA: dd) and flushes it. */
export async function copyImage(partition: string, iso: Buffer): Promise<void> {
  const { size } = await blockDeviceInfo(partition);
  if (iso.length > size) throw new Error(`the config drive (${iso.length} bytes) does not fit ${partition} (${size} bytes)`);
  const handle = await open(partition, 'r+');
  try {
    await handle.write(iso, 0, iso.length, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
