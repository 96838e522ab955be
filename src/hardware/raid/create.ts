import type { AgentContext } from '../../agent-context.ts';
import { AgentError, softwareRaidError } from '../../errors.ts';
import { currentBootMode } from '../../extensions/image.ts';
import { ToolError } from '../../run.ts';
import type { NodeDict } from '../../steps/types.ts';
import { nodeBootMode, nodeDiskLabel } from '../../writers/partition-image-info.ts';
import { kernelPartitions, readPartitionTable } from '../partitions.ts';
import { parseRaidConfig, raidSkipList, softwareLogicalDisks, validateRaidConfig, type LogicalDisk } from './config.ts';
import { examineAll, findArrays, raidCandidateDisks, raidTargets } from './discover.ts';
import { MDADM_ENV, detail, ensureMdDriver } from './mdadm.ts';
import {
  mdadmCreateArgs,
  mklabelArgs,
  mkpartArgs,
  parseFirstUsableSector,
  placeLogicalDisks,
  planRaid,
  raidStart,
  type BootMode,
  type PlacedLogicalDisk,
  type RaidPlan,
  type TableType,
} from './plan.ts';
import { decideRaidActions, logicalDisksToSkip } from './skip-list.ts';

export interface CreateOptions {
  procRoot?: string;
  sysRoot?: string;
}

/**
 * create_configuration / apply_configuration's creation (IPA's _do_create_configuration):
 * validate, choose the disks, check everything that could refuse (partitions already there,
 * the disk guard, the md driver) and only then write: partition tables, member partitions,
 * md arrays. Returns the config as given, which Ironic stores as the node's raid_config.
 */
export async function createConfiguration(ctx: AgentContext, node: NodeDict | undefined, raw: unknown, opts: CreateOptions = {}): Promise<unknown> {
  const config = parseRaidConfig(raw);
  if (softwareLogicalDisks(config).length === 0) {
    ctx.log.debug('no software RAID logical disks in the RAID config');
    return {};
  }
  ctx.log.info('creating software RAID');
  const devices = await raidCandidateDisks(ctx, node);
  validateRaidConfig(config, node, devices.length);
  let logicalDisks: LogicalDisk[] = config.logical_disks ?? [];

  const skipList = raidSkipList(node);
  let kept: string[] = [];
  if (skipList) {
    const targets = await raidTargets(devices);
    const arrays = await findArrays(ctx, targets, await examineAll(ctx, targets), opts.procRoot);
    if (arrays.length > 0) {
      const decisions = decideRaidActions(arrays, skipList);
      const { skip, problem } = logicalDisksToSkip(logicalDisks, decisions, skipList);
      if (problem) throw softwareRaidError(problem);
      logicalDisks = logicalDisks.filter((ld) => !skip.includes(ld));
      kept = arrays.flatMap((a) => a.holderDisks);
      ctx.log.info({ skipped: skip.map((ld) => ld.volume_name) }, 'logical disks kept by skip_block_devices are not created again');
      if (logicalDisks.length > 0 && kept.length > 0) {
        // IPA would write a new partition table over the kept array's disks here; refuse instead.
        throw softwareRaidError(
          `Cannot create ${logicalDisks.map((ld) => ld.volume_name).join(', ')}: disks ${[...new Set(kept)].join(', ')} hold software RAID devices kept by skip_block_devices`,
        );
      }
    }
  }
  if (logicalDisks.length === 0) {
    ctx.log.info('every logical disk exists already (skip_block_devices)');
    return raw;
  }

  const { disks, placed } = placeLogicalDisks(devices, logicalDisks);
  if (disks.length === 0) throw softwareRaidError('No disks found for the software RAID configuration');
  const withParts: string[] = [];
  for (const disk of disks) {
    const table = await readPartitionTable(ctx.run, disk).catch(() => undefined);
    if (table && table.partitions.length > 0) withParts.push(disk);
  }
  if (withParts.length > 0) throw softwareRaidError(`Partitions detected on devices ${withParts.join(', ')} during RAID config`);
  for (const disk of disks) await ctx.diskGuard.check(disk);
  await ensureMdDriver(ctx.run, opts.procRoot);

  const bootMode = nodeBootMode(node, currentBootMode(opts.sysRoot));
  const tableType = nodeDiskLabel(node, bootMode);
  const plan = await partitionMembers(ctx, { disks, placed, bootMode, tableType }, opts);
  for (const array of plan.arrays) {
    await createArray(ctx, array);
    if (array.logicalDisk.is_root_volume !== undefined && array.logicalDisk.is_root_volume !== null) {
      ctx.deployment.raidRootVolumes = { ...ctx.deployment.raidRootVolumes, [array.md]: array.logicalDisk.is_root_volume };
    }
  }
  ctx.log.info({ arrays: plan.arrays.map((a) => ({ md: a.md, level: a.level, name: a.name, members: a.members.map((m) => m.path) })) }, 'created software RAID');
  return raw;
}

/**
 * The member partitions (IPA's create_raid_partition_tables and the parted loop): a new
 * table on every member disk, the start after the boot gap, one partition per logical disk,
 * then the kernel is told (partx: no udev) and every planned partition must be there.
 */
export async function partitionMembers(
  ctx: AgentContext,
  input: { disks: readonly string[]; placed: readonly PlacedLogicalDisk[]; bootMode: BootMode; tableType: TableType; existingMd?: readonly string[] },
  opts: { sysRoot?: string } = {},
): Promise<RaidPlan> {
  const starts: Record<string, string> = {};
  try {
    for (const disk of input.disks) {
      await ctx.diskGuard.check(disk);
      ctx.log.info({ disk, table: input.tableType }, 'creating the partition table of a software RAID member');
      await ctx.run('parted', mklabelArgs(disk, input.tableType));
      const first = input.bootMode === 'bios' && input.tableType === 'msdos' ? parseFirstUsableSector(await ctx.run('sgdisk', ['-F', disk])) : undefined;
      starts[disk] = raidStart(input.bootMode, input.tableType, first);
    }
    const plan = planRaid({ ...input, starts });
    for (const part of plan.partitions) {
      ctx.log.debug({ disk: part.disk, start: part.start, end: part.end }, 'creating a software RAID member partition');
      await ctx.run('parted', mkpartArgs(part));
    }
    for (const disk of plan.disks) {
      await ctx.run('partx', ['-d', disk]).catch(() => undefined);
      await ctx.run('partx', ['-a', disk]).catch(() => undefined);
    }
    for (const disk of plan.disks) {
      const known = new Set((await kernelPartitions(disk, opts.sysRoot)).map((p) => p.name));
      const missing = plan.partitions.filter((p) => p.disk === disk && !known.has(p.path)).map((p) => p.path);
      if (missing.length > 0) throw softwareRaidError(`partitions ${missing.join(', ')} did not appear after partitioning ${disk}`);
    }
    return plan;
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw softwareRaidError(`Failed to create partitions for software RAID: ${(err as Error).message}`);
  }
}

/** mdadm --create, then IPA's repair: a member mdadm left out is added back. */
async function createArray(ctx: AgentContext, array: RaidPlan['arrays'][number]): Promise<void> {
  const components = array.members.map((m) => m.path);
  ctx.log.info({ md: array.md, name: array.name, level: array.level, components }, 'creating md device');
  try {
    await ctx.run('mdadm', mdadmCreateArgs(array), { env: MDADM_ENV });
  } catch (err) {
    throw softwareRaidError(`Failed to create md device ${array.md} on ${components.join(' ')}: ${err instanceof ToolError ? err.message : String(err)}`);
  }
  const info = await detail(ctx.run, array.md);
  if (!info) {
    ctx.log.warn({ md: array.md }, 'cannot read the new md device back (mdadm --detail failed): not checking for missing members');
    return;
  }
  const actual = new Set(info.components);
  for (const dev of components.filter((c) => !actual.has(c))) {
    ctx.log.warn({ device: dev, md: array.md }, 'member missing from the new md device: re-adding');
    try {
      await ctx.run('mdadm', ['--add', array.md, dev], { env: MDADM_ENV });
    } catch (err) {
      throw softwareRaidError(`Failed re-add ${dev} to ${array.md}: ${(err as Error).message}`);
    }
  }
}
