import type { AgentContext } from '../agent-context.ts';
import { deviceNotFound } from '../errors.ts';
import type { NodeDict } from '../steps/types.ts';
import { listDisks, type BlockDevice } from './block-devices.ts';
import { parentDisk } from './partitions.ts';
import { detail } from './raid/mdadm.ts';
import { InvalidHintsError, findDevicesByHints, parseRootDeviceHints } from './root-device-hints.ts';

/** Without hints the root disk is the smallest of at least 4 GiB (spec §9.9). */
export const MIN_ROOT_DEVICE_SIZE = 4 * 2 ** 30;

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** `instance_info.root_device`, else `properties.root_device` of the node. */
export function rootDeviceHintsOf(node: NodeDict | undefined): unknown {
  return record(node?.instance_info)?.root_device ?? record(node?.properties)?.root_device;
}

/** Disks matched by `properties.skip_block_devices` are never candidates (spec §9.9 step 1). */
export function withoutSkipped(devices: BlockDevice[], node: NodeDict | undefined): BlockDevice[] {
  const skip = record(node?.properties)?.skip_block_devices;
  if (!Array.isArray(skip)) return devices;
  let kept = devices;
  for (const entry of skip) {
    const hints = record(entry);
    if (!hints || 'volume_name' in hints) continue;
    try {
      const parsed = parseRootDeviceHints(hints);
      if (parsed) {
        const skipped = new Set(findDevicesByHints(kept, parsed));
        kept = kept.filter((d) => !skipped.has(d));
      }
    } catch (err) {
      throw deviceNotFound(`Invalid skip_block_devices entry ${JSON.stringify(entry)}: ${(err as Error).message}`);
    }
  }
  return kept;
}

/** IPA's choice among candidate disks (spec §9.9 steps 4-5, vectors §12.2-§12.3). */
export function pickRootDevice(devices: readonly BlockDevice[], rawHints: unknown): BlockDevice {
  let hints;
  try {
    hints = parseRootDeviceHints(rawHints);
  } catch (err) {
    if (err instanceof InvalidHintsError) throw deviceNotFound(err.message);
    throw err;
  }
  if (!hints) {
    const sorted = [...devices].sort((a, b) => a.size - b.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const pick = sorted.find((d) => d.size >= MIN_ROOT_DEVICE_SIZE);
    if (!pick) {
      throw deviceNotFound(
        `No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than ${MIN_ROOT_DEVICE_SIZE}B.`,
      );
    }
    return pick;
  }
  const found = findDevicesByHints(devices, hints)[0];
  if (!found) throw deviceNotFound(`No suitable device was found for deployment using these hints ${JSON.stringify(rawHints)}`);
  return found;
}

/**
 * IPA's use of the RAID config made in this boot (create/apply_configuration): an md device
 * with is_root_volume true is the root device, whatever the hints say; one with false is
 * no candidate, nor are the disks under it (`holderDisks`: md device -> its member disks).
 */
export function raidRootChoice(
  devices: readonly BlockDevice[],
  volumes: Readonly<Record<string, boolean>> | undefined,
  holderDisks: Readonly<Record<string, readonly string[]>>,
): { root?: string; devices: BlockDevice[] } {
  let kept = [...devices];
  for (const [md, isRoot] of Object.entries(volumes ?? {})) {
    if (isRoot) return { root: md, devices: kept };
    const excluded = new Set([md, ...(holderDisks[md] ?? [])]);
    kept = kept.filter((d) => !excluded.has(d.name));
  }
  return { devices: kept };
}

/**
 * The disk to deploy to, for the cached node. Candidates are the machine's disks minus the
 * skip list and, when an allowlist is configured, only allowlisted devices: the default
 * choice can never land on a disk the operator did not allow. `refresh` re-reads the node
 * from Ironic first when it has no hints, as IPA does for prepare_image (spec §3.4).
 */
export async function selectRootDevice(ctx: AgentContext, opts: { refresh?: boolean } = {}): Promise<BlockDevice> {
  if (opts.refresh && rootDeviceHintsOf(ctx.conductor.node) === undefined) await ctx.refreshNode();
  const node = ctx.conductor.node;
  const restricted = ctx.diskGuard.allowlist.length > 0;
  let devices = await listDisks({ run: ctx.run }, { includeLoop: restricted });
  if (restricted) {
    const allowed = await Promise.all(devices.map((d) => ctx.diskGuard.allowed(d.name)));
    devices = devices.filter((_, i) => allowed[i]);
  }
  const volumes = ctx.deployment?.raidRootVolumes;
  if (volumes && Object.keys(volumes).length > 0) {
    const all = await listDisks({ run: ctx.run }, { includeLoop: restricted });
    const holders: Record<string, string[]> = {};
    for (const md of Object.keys(volumes)) {
      const members = (await detail(ctx.run, md))?.components ?? [];
      holders[md] = await Promise.all(members.map(async (m) => (await parentDisk(m)) ?? m));
    }
    const choice = raidRootChoice(devices, volumes, holders);
    if (choice.root !== undefined) {
      const md = all.find((d) => d.name === choice.root);
      if (!md) throw deviceNotFound(`The root volume ${choice.root} of the target RAID configuration is not among the block devices`);
      if (rootDeviceHintsOf(node) !== undefined) ctx.log.warn({ hints: rootDeviceHintsOf(node), device: md.name }, 'both root device hints and a RAID root volume are defined: the RAID root volume is used');
      ctx.log.info({ device: md.name, size: md.size }, 'root device selected: the root volume of the target RAID configuration');
      return md;
    }
    devices = choice.devices;
  }
  const device = pickRootDevice(withoutSkipped(devices, node), rootDeviceHintsOf(node));
  ctx.log.info({ device: device.name, size: device.size, hints: rootDeviceHintsOf(node) ?? null }, 'root device selected');
  return device;
}
