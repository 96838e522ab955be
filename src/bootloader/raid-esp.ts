import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { AgentContext } from '../agent-context.ts';
import { commandExecution, deviceNotFound, softwareRaidError } from '../errors.ts';
import { probeDevice, type BlkidProbe } from '../hardware/blkid.ts';
import { deviceSize, kernelPartitionNumber, kernelPartitions, parentDisk, readPartitionTable, slavesOf } from '../hardware/partitions.ts';
import { MDADM_ENV, mdArrays } from '../hardware/raid/mdadm.ts';
import { ESP_SIZE_MIB, firstFreeMd, parseFirstUsableSector } from '../hardware/raid/plan.ts';
import { rescanPartitions, type DiskPartition } from './esp.ts';
import { readEspTree, writeEspFiles } from './esp-files.ts';

/**
 * The ESP of a software RAID root, as IPA's raid_utils.prepare_boot_partitions_for_softraid
 * makes it under UEFI: one ESP partition per holder disk, in the gap create_configuration left
 * in front of the member partitions (ESP_SIZE_MIB + 1 MiB), mirrored by an md RAID-1 with
 * metadata 1.0. That superblock sits at the end of each member, so the firmware, which knows
 * nothing of md, reads every member as a plain FAT filesystem and can boot from either disk.
 */

export const isMdDevice = (device: string): boolean => /^\/dev\/md/.test(device);

/** IPA's PARTLABEL of the ESP partition on holder `index`. */
export const espPartitionName = (index: number): string => `uefi-holder-${index}`;

/**
 * The disks under an md device (IPA's get_holder_disks): the parent disk of each member
 * partition in /sys/class/block/<md>/slaves (a whole-disk member is its own disk), in name
 * order, each once.
 */
export async function raidHolderDisks(md: string, sysRoot?: string): Promise<string[]> {
  const disks: string[] = [];
  for (const member of await slavesOf(md, sysRoot)) {
    const disk = (await parentDisk(member, sysRoot)) ?? member;
    if (!disks.includes(disk)) disks.push(disk);
  }
  if (disks.length === 0) throw deviceNotFound(`the kernel lists no member devices of ${md} (/sys/class/block/${basename(md)}/slaves is empty)`);
  return disks;
}

/**
 * IPA's find_esp_raid: an ESP RAID made by an earlier deployment (a rebuild) is a RAID-1
 * whose content blkid reads as vfat. The root array of a whole-disk image holds a partition
 * table, not a filesystem, so it is never taken for one.
 */
export async function findEspRaid(ctx: AgentContext, procRoot?: string): Promise<string | undefined> {
  for (const array of await mdArrays(procRoot)) {
    if (array.level !== 'raid1') continue;
    if ((await probeDevice(ctx.run, array.device)).TYPE === 'vfat') return array.device;
  }
  return undefined;
}

/** IPA's sgdisk call: a 550 MiB ESP (type ef00) from the first free sector, named for its holder. */
export function sgdiskEspArgs(holder: string, firstFreeSector: number, index: number): string[] {
  return ['-n', `0:${firstFreeSector}s:+${ESP_SIZE_MIB}MiB`, '-t', '0:ef00', '-c', `0:${espPartitionName(index)}`, holder];
}

/** IPA's mdadm call for the ESP RAID: metadata 1.0 puts the superblock at the end of each member. */
export function mdadmEspArgs(md: string, partitions: readonly string[]): string[] {
  return ['--create', md, '--force', '--run', '--metadata=1.0', '--level', '1', '--name', 'esp', '--raid-devices', String(partitions.length), ...partitions];
}

/** The lowest md name neither /proc/mdstat nor sysfs knows. */
async function nextFreeMd(procRoot?: string, sysRoot = '/sys'): Promise<string> {
  const taken = new Set((await mdArrays(procRoot)).map((a) => a.device));
  for (const entry of await readdir(join(sysRoot, 'class/block')).catch(() => [] as string[])) {
    if (/^md\d+$/.test(entry)) taken.add(`/dev/${entry}`);
  }
  return firstFreeMd(taken);
}

/**
 * The partition sgdisk just named `name` on `holder`, by the on-disk table (sfdisk reads the
 * GPT names; IPA asks blkid by PARTLABEL, which would also find a leftover from an earlier
 * attempt), once the kernel knows it.
 */
async function newPartitionNamed(ctx: AgentContext, holder: string, name: string, before: ReadonlySet<string>, sysRoot?: string): Promise<string> {
  const table = await readPartitionTable(ctx.run, holder);
  const entry = table?.partitions.find((p) => p.name === name && !before.has(p.node));
  if (!entry) throw commandExecution(`sgdisk made no partition named ${name} on ${holder}`);
  const known = (await kernelPartitions(holder, sysRoot)).some((p) => p.name === entry.node);
  if (!known) throw deviceNotFound(`the new ESP partition ${entry.node} of ${holder} is in the partition table but the kernel does not know it`);
  return entry.node;
}

/**
 * The ESP partitions on every holder, then the md RAID-1 over them. Each holder passes the
 * disk guard with the running md arrays as expected holders (the root array and, on the same
 * disks, the other volumes create_configuration made): sgdisk only adds a partition in free
 * space, beside their members. A mount, swap or any other holder still refuses.
 */
export async function createEspRaid(ctx: AgentContext, holders: readonly string[], opts: { sysRoot?: string; procRoot?: string }): Promise<string> {
  const partitions: string[] = [];
  const arrays = (await mdArrays(opts.procRoot)).map((a) => a.device);
  for (const [index, holder] of holders.entries()) {
    await ctx.diskGuard.check(holder, { heldBy: arrays });
    const before = new Set((await readPartitionTable(ctx.run, holder))?.partitions.map((p) => p.node) ?? []);
    // -F: the aligned start of the largest free block; the gap in front of the members when
    // a MAX volume fills the rest of the disk (IPA uses the same call).
    const first = parseFirstUsableSector(await ctx.run('sgdisk', ['-F', holder]));
    ctx.log.info({ holder, start: first, name: espPartitionName(index) }, `creating an ESP partition on ${holder} for the software RAID ESP`);
    await ctx.run('sgdisk', sgdiskEspArgs(holder, first, index));
    await rescanPartitions(ctx.run, holder);
    partitions.push(await newPartitionNamed(ctx, holder, espPartitionName(index), before, opts.sysRoot));
  }
  for (const partition of partitions) await ctx.diskGuard.check(partition);
  const md = await nextFreeMd(opts.procRoot, opts.sysRoot);
  ctx.log.info({ md, partitions }, `creating the ESP RAID ${md}`);
  await ctx.run('mdadm', mdadmEspArgs(md, partitions), { env: MDADM_ENV });
  return md;
}

/**
 * The image's ESP onto the ESP RAID, as IPA's filesystem copy: a FAT with the image ESP's
 * volume ID and label (so an fstab entry naming its UUID stays valid), then every file and
 * directory. Not a block copy: a partition image's ESP (550 MiB) is larger than the ESP RAID
 * (550 MiB less md's superblock) while its files fit. Both FATs are read and written with
 * mtools, never mounted; the files are staged in a private directory on the way.
 */
export async function copyEsp(ctx: AgentContext, esp: string, espMd: string, sysRoot?: string): Promise<void> {
  const room = await deviceSize(espMd, sysRoot);
  const probe = await probeDevice(ctx.run, esp);
  const staging = await mkdtemp(join(tmpdir(), 'ina-esp-copy-'));
  try {
    const tooLarge = (bytes: number) => softwareRaidError(`ESP content (more than ${bytes} bytes) exceeds md device size (${room} bytes)`);
    const staged = await readEspTree(ctx.run, esp, staging, room, tooLarge);
    ctx.log.info({ from: esp, to: espMd, files: staged.files.length, bytes: staged.bytes }, `Relocating EFI ${esp} to ${espMd} via filesystem copy`);
    await ctx.run('mkfs.vfat', mkfsEspArgs(espMd, probe));
    await writeEspFiles(ctx.run, espMd, [], staged.files, staged.directories);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * mkfs.vfat for the ESP RAID with the source's volume ID (blkid prints it as `ABCD-1234`,
 * mkfs.vfat takes the hex digits) and label, `esp` without one (IPA).
 */
export function mkfsEspArgs(espMd: string, source: BlkidProbe): string[] {
  const volumeId = source.UUID?.replace('-', '');
  return ['-n', source.LABEL || 'esp', ...(volumeId && /^[0-9a-f]{8}$/i.test(volumeId) ? ['-i', volumeId] : []), espMd];
}

/** The members of the ESP RAID as efibootmgr names them: the disk and the partition number. */
export async function espRaidMembers(espMd: string, sysRoot?: string): Promise<DiskPartition[]> {
  const members: DiskPartition[] = [];
  for (const member of await slavesOf(espMd, sysRoot)) {
    const disk = await parentDisk(member, sysRoot);
    const number = await kernelPartitionNumber(member, sysRoot);
    if (disk === undefined || number === undefined) throw deviceNotFound(`${member}, a member of the ESP RAID ${espMd}, is not a partition`);
    members.push({ path: disk, number });
  }
  if (members.length === 0) throw deviceNotFound(`the kernel lists no member devices of the ESP RAID ${espMd}`);
  return members;
}
