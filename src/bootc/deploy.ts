import type { AgentContext } from '../agent-context.ts';
import { commandExecution, invalidCommandParams } from '../errors.ts';
import { selectRootDevice } from '../hardware/root-device.ts';
import { writeConfigDrive } from '../writers/config-drive.ts';
import { ImageError } from '../writers/errors.ts';
import { validateAuthorizedKeys } from './authorized-keys.ts';
import { parseImageSource } from './image-ref.ts';
import { installArgv, removeDir, runInstall, selinuxEnabled, writeKeysDir } from './install.ts';
import { checkImageFits, rootSizeMiB } from './layout.ts';
import { admit, remoteImageSize, storageSpace } from './memory.ts';
import { checkInstalledTable, partitionUuids, reloadPartitions } from './partitions.ts';
import { localImageSize, podmanVersion, pullImage, withPullRetries } from './podman.ts';
import { decodePullSecret, withAuthFile } from './pull-secret.ts';
import { makeUnbootable } from './unbootable.ts';

export interface BootcRequest {
  imageSource: string;
  configdrive?: string | null | undefined;
  pullSecret?: string | null | undefined;
  instanceInfo: Record<string, unknown>;
  nodeUuid?: string | undefined;
}

type Ctx = AgentContext & { signal: AbortSignal };

function tpm2LuksOption(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|yes|on|1)$/i.test(value)) return true;
  if (typeof value === 'string' && /^(false|no|off|0|)$/i.test(value)) return false;
  throw invalidCommandParams(`instance_info.bootc_tpm2_luks must be a boolean, not ${JSON.stringify(value)}`);
}

function keysOption(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalidCommandParams('instance_info.bootc_authorized_keys must be a string of newline-separated keys');
  return validateAuthorizedKeys(value);
}

/**
 * IPA's execute_bootc_install (spec §7.7): every input checked before the disk is touched,
 * the image pulled (secret in a short-lived auth file) before tenant code runs, then the
 * image's own bootc installs onto the root device, then the config drive goes at the end.
 */
export async function executeBootcInstall(ctx: Ctx, req: BootcRequest): Promise<string> {
  if (ctx.config.disableBootcDeploy) throw commandExecution('execute_bootc_install is administratively disabled (disable_bootc_deploy)');
  const { ref: image, registry } = parseImageSource(req.imageSource);
  const auth = req.pullSecret ? decodePullSecret(req.pullSecret) : undefined;
  const tpm2Luks = tpm2LuksOption(req.instanceInfo.bootc_tpm2_luks);
  const keys = keysOption(req.instanceInfo.bootc_authorized_keys);

  const disk = await selectRootDevice(ctx, { refresh: true });
  const device = await ctx.diskGuard.check(disk.name);
  const rootMiB = rootSizeMiB(device, disk.size, tpm2Luks);
  ctx.deployment.partitionUuids = {};
  ctx.deployment.cachedImageId = undefined;
  ctx.log.info({ image, device, tpm2Luks, authorizedKeys: keys !== undefined, pullSecret: auth !== undefined, rootMiB }, 'bootc install starting');

  const version = await podmanVersion(ctx);
  const space = await storageSpace(ctx);
  const policy = { retries: ctx.config.bootcPullRetries, delaySeconds: ctx.config.bootcPullRetryDelay };
  const pull = async (authFile: string | undefined) => {
    let compressed: number | undefined;
    try {
      compressed = await withPullRetries(ctx, image, policy, () => remoteImageSize(ctx, image, authFile));
    } catch (err) {
      // skopeo is only for the size; without it the check after the pull still runs.
      if (!(err instanceof Error && /skopeo is not installed/.test(err.message))) throw err;
      ctx.log.warn({ image }, 'skopeo is not installed: cannot check the image size before pulling');
    }
    if (compressed !== undefined) {
      admit(image, compressed, ctx.config.bootcExpansionFactor, space);
      ctx.log.info({ image, compressedBytes: compressed, availableBytes: space.available, graphRoot: space.graphRoot }, 'bootc image fits in container storage');
    }
    await pullImage(ctx, image, { authFile, version, policy });
  };
  // The auth file is gone when withAuthFile returns or throws: before any tenant code runs.
  if (auth) await withAuthFile(ctx.config.bootcWorkDir, registry, auth, pull);
  else await pull(undefined);
  ctx.log.info({ image, podman: version.text }, 'bootc image pulled');
  checkImageFits(device, image, rootMiB, await localImageSize(ctx, image));

  const keysDir = keys ? await writeKeysDir(ctx.config.bootcWorkDir, keys) : undefined;
  // From here on the disk is being rewritten: whatever fails leaves it unbootable.
  try {
    try {
      const plan = { image, device, graphRoot: space.graphRoot, rootMiB, tpm2Luks, selinux: await selinuxEnabled(ctx), keysDir };
      ctx.log.info({ argv: installArgv(plan) }, 'running bootc install to-disk');
      await runInstall(ctx, plan);
    } finally {
      await removeDir(keysDir);
    }
    await reloadPartitions(ctx, device);
    await checkInstalledTable(ctx, device);
    if (req.configdrive) {
      await writeConfigDrive(ctx, device, req.configdrive, { nodeUuid: req.nodeUuid, rebuild: ctx.config.configDriveRebuild });
    }
    ctx.deployment.partitionUuids = await partitionUuids(ctx, device);
  } catch (err) {
    // An image without bootc never started writing: the disk is as it was.
    const untouched = err instanceof ImageError && err.type === 'ImageDownloadError';
    if (!untouched) await makeUnbootable(ctx, device);
    throw err;
  }
  const message = `Container image (${req.imageSource}) written to device ${device}`;
  ctx.log.info({ image, device, partitionUuids: ctx.deployment.partitionUuids }, message);
  return message;
}


