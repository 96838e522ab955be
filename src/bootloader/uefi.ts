import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentContext } from '../agent-context.ts';
import type { CommandContext } from '../extensions/types.ts';
import { AgentError, commandExecution, errorMessage } from '../errors.ts';
import type { InstallBootloaderParams } from '../extensions/image.ts';
import { probeDevice } from '../hardware/blkid.ts';
import type { GuardCheckOptions } from '../hardware/disk-guard.ts';
import { deviceSize } from '../hardware/partitions.ts';
import { runCommandBytes, ToolError, type RunCommandBytes } from '../run.ts';
import { mountable } from '../steps/inject-files/partitions.ts';
import { Efibootmgr, type BootRecord } from './efibootmgr.ts';
import { findEsp, findPartitionByUuid, noEsp, noPartitionWithUuid, rescanPartitions, type DiskPartition } from './esp.ts';
import { listEsp, readEspFile, writeEspFiles } from './esp-files.ts';
import { basename, dirname, efiArchOf, efiPath, fallbackLoaderPath, findEfiBootloaders, findEntry, parseBootCsv, planFallbackLoader, type EspEntry } from './loaders.ts';
import { copyEsp, createEspRaid, espRaidMembers, findEspRaid, isMdDevice, raidHolderDisks } from './raid-esp.ts';
import { appendEspToFstab, stageEfiAssets } from './root-assets.ts';

/** What the disk guard needs besides the device: for an md device, its holder disks. */
type GuardOptions = Pick<GuardCheckOptions, 'allowedVia'>;

export interface BootloaderOptions {
  /** sysfs, where the kernel's partitions and their sizes are read. */
  sysRoot?: string;
  /** procfs, where /proc/mdstat lists the md arrays (the ESP RAID). */
  procRoot?: string;
  /** The efibootmgr binary (tests: the double). */
  efibootmgr?: string;
  /** Node's process.arch naming; decides BOOTX64.EFI or BOOTAA64.EFI. */
  arch?: string;
  runBytes?: RunCommandBytes;
}

/**
 * root_uuid names a partition of a partition image. Ironic sends null or the MBR disk id
 * (`0x00000000`, or `0x5a3b1c2d` for an MBR whole-disk image) otherwise; IPA only tests for
 * `0x00000000` before grub, but no filesystem or partition UUID looks like `0x...`.
 */
export function namesPartition(rootUuid: string | null | undefined): rootUuid is string {
  return typeof rootUuid === 'string' && rootUuid !== '' && !/^0x[0-9a-f]+$/i.test(rootUuid);
}

interface EspState {
  disk: string;
  esp: DiskPartition;
  entries: EspEntry[];
  /** IPA's loader search on the ESP (after preservation, if that ran). */
  loaders: string[];
  /** Set when the image's /boot/efi/EFI was copied in: the root partition, for the fstab entry. */
  preservedFrom?: { partition: string; fstype: string };
  /**
   * Set on a software RAID root: `disk` is the root array, `esp` the ESP RAID, and both pass
   * the disk guard as allowed through the holder disks.
   */
  raidGuard?: GuardOptions;
}

/** The disk guard in front of a write to the ESP: its disk, or the ESP RAID itself. */
async function guardEsp(ctx: AgentContext, state: EspState): Promise<void> {
  await (state.raidGuard ? ctx.diskGuard.check(state.esp.path, state.raidGuard) : ctx.diskGuard.check(state.disk));
}

/**
 * Finds the ESP of the root disk and what it holds; when IPA's search finds no loader on it
 * and root_uuid names a partition (a partition image, whose fresh ESP is empty), copies the
 * image's own EFI assets into it first. The disk guard runs before the first thing that
 * touches the disk and again before the ESP is written (the root was mounted in between).
 * Undefined only when `required` is false and the disk has no ESP.
 */
async function prepareEsp(ctx: AgentContext, device: string, p: InstallBootloaderParams, opts: BootloaderOptions, required: boolean, guard: GuardOptions = {}): Promise<EspState | undefined> {
  const disk = await ctx.diskGuard.check(device, guard);
  await rescanPartitions(ctx.run, disk);
  const esp = await findEsp(ctx.run, disk, p.efi_system_part_uuid, opts.sysRoot);
  if (!esp) {
    if (required) throw noEsp(disk);
    return undefined;
  }
  let entries = await listEsp(ctx.run, esp.path);
  let loaders = findEfiBootloaders(entries);
  const state: EspState = { disk, esp, entries, loaders };
  if (loaders.length === 0 && namesPartition(p.root_uuid)) {
    const from = await preserveEfiAssets(ctx, disk, esp, entries, p.root_uuid, opts, guard);
    if (from) {
      entries = await listEsp(ctx.run, esp.path);
      loaders = findEfiBootloaders(entries);
      Object.assign(state, { entries, loaders, preservedFrom: from });
    }
  }
  return state;
}

/**
 * The image's /boot/efi/EFI onto its empty ESP (IPA's _preserve_efi_assets, which IPA only
 * reaches inside its grub path, behind enable_bios_bootloader_install since CVE-2026-43003).
 * Copying files runs no tenant code, so it is done here, and without IPA's grub-mkconfig run
 * in the image. Files the ESP has already are left as they are.
 */
async function preserveEfiAssets(ctx: AgentContext, disk: string, esp: DiskPartition, entries: EspEntry[], rootUuid: string, opts: BootloaderOptions, guard: GuardOptions): Promise<EspState['preservedFrom']> {
  const root = await findPartitionByUuid(ctx.run, disk, rootUuid, opts.sysRoot);
  if (!root) throw noPartitionWithUuid(rootUuid, disk);
  const fstype = root.probe.TYPE;
  if (!mountable(fstype)) {
    ctx.log.warn({ partition: root.path, fstype: fstype ?? null }, 'the root partition has no filesystem to read EFI assets from');
    return undefined;
  }
  const staging = await mkdtemp(join(tmpdir(), 'ina-efi-assets-'));
  try {
    const staged = await stageEfiAssets(ctx, root.path, fstype!, staging, await deviceSize(esp.path, opts.sysRoot));
    if (staged.files.length === 0) {
      ctx.log.info({ partition: root.path }, 'the image has no /boot/efi/EFI assets to preserve');
      return undefined;
    }
    await ctx.diskGuard.check(disk, guard);
    const writes = staged.files.filter((f) => !findEntry(entries, f.to)).map((f) => ({ from: f.local, to: f.to }));
    await writeEspFiles(ctx.run, esp.path, entries, writes);
    ctx.log.info({ esp: esp.path, from: root.path, files: writes.map((w) => w.to), bytes: staged.bytes }, `Files preserved to ${esp.path} from /boot/efi/EFI of ${root.path}`);
    return { partition: root.path, fstype: fstype! };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The ESP's /etc/fstab entry after a preservation, as IPA adds it (best effort, as in IPA).
 * On a software RAID root the ESP is the ESP RAID: it carries the image ESP's volume ID, so
 * the entry names that UUID, never the PARTUUID Ironic sent, which names the image's ESP
 * partition that was wiped.
 */
async function addFstabEntry(ctx: AgentContext, state: EspState, p: InstallBootloaderParams): Promise<void> {
  if (!state.preservedFrom) return;
  const probe = await probeDevice(ctx.run, state.esp.path);
  const uuid = (state.raidGuard ? undefined : p.efi_system_part_uuid) ?? probe.UUID;
  if (!uuid) {
    ctx.log.warn({ esp: state.esp.path }, 'the ESP has no filesystem UUID; no /etc/fstab entry added');
    return;
  }
  // IPA decides by which of the partition's IDs contains the UUID, defaulting to UUID.
  const label = probe.UUID?.toLowerCase() !== uuid.toLowerCase() && probe.PART_ENTRY_UUID?.toLowerCase() === uuid.toLowerCase() ? 'PARTUUID' : 'UUID';
  await ctx.diskGuard.check(state.disk, state.raidGuard);
  const outcome = await appendEspToFstab(ctx, state.preservedFrom.partition, state.preservedFrom.fstype, label, uuid);
  if (outcome.result === 'failed') ctx.log.warn({ reason: outcome.reason }, `Failed to add entry to /etc/fstab: ${outcome.reason}`);
  else ctx.log.info({ result: outcome.result, entry: `${label}=${uuid}` }, 'ESP entry in the image\'s /etc/fstab');
}

/** The loader a BOOT.CSV found by the search names, as an ESP path; it must exist there. */
async function csvLoader(ctx: AgentContext, state: EspState, csv: string): Promise<{ path: string; label: string }> {
  const parsed = parseBootCsv(await readEspFile(ctx.run, state.esp.path, csv), `${csv} on ${state.esp.path}`);
  const path = `${dirname(csv)}/${parsed.loader}`;
  // IPA registers whatever the CSV says; an entry for a missing file would not boot.
  if (!findEntry(state.entries, path)) throw commandExecution(`${csv} on ${state.esp.path} names ${parsed.loader}, which is not in ${dirname(csv)}`);
  return { path, label: parsed.label };
}

const isCsv = (path: string) => basename(path).toLowerCase().endsWith('.csv');

/** A loader to register and its label: `ironic<N>` by search order, or the label its BOOT.CSV gives. */
interface BootEntry {
  path: string;
  label: string;
}

/** IPA's _run_efibootmgr labels: N counts every loader found, CSVs included. */
async function bootEntries(ctx: AgentContext, state: EspState): Promise<BootEntry[]> {
  const entries: BootEntry[] = [];
  for (const [i, loader] of state.loaders.entries()) {
    entries.push(isCsv(loader) ? await csvLoader(ctx, state, loader) : { path: loader, label: `ironic${i + 1}` });
  }
  return entries;
}

/**
 * One NVRAM entry per loader on partition `partNumber` of `disk`, each after the entries with
 * the same label are removed (`records` is read once, before the first change). `suffix`
 * makes the labels of each ESP RAID member unique (IPA's "(RAID, part<i>)").
 */
async function registerLoaders(ctx: AgentContext, efibootmgr: Efibootmgr, records: readonly BootRecord[], disk: string, partNumber: number, entries: readonly BootEntry[], suffix = ''): Promise<void> {
  for (const entry of entries) {
    const label = `${entry.label}${suffix}`;
    for (const record of records) {
      if (record.label !== label) continue;
      ctx.log.debug({ bootNum: record.number }, 'Found bootnum matching label');
      await efibootmgr.remove(record.number);
    }
    ctx.log.info({ path: efiPath(entry.path), part: partNumber, dev: disk, label }, `Adding loader ${efiPath(entry.path)} on partition ${partNumber} of device ${disk} with label ${label}`);
    await efibootmgr.create(disk, partNumber, label, efiPath(entry.path));
  }
}

/** Tool failures become IPA's CommandExecutionError with its wording; agent errors pass. */
function uefiFailure(disk: string, err: unknown): unknown {
  if (err instanceof AgentError) return err;
  return commandExecution(`Could not configure UEFI boot on device ${disk}: ${errorMessage(err)}`);
}

async function sync(ctx: AgentContext): Promise<void> {
  await ctx.run('sync', []).catch((err: unknown) => ctx.log.warn({ err: errorMessage(err) }, 'Unable to sync the local disks'));
}

/**
 * The ramdisk booted via UEFI (IPA's manage_uefi): each loader on the ESP gets an NVRAM boot
 * entry, after entries with the same label are removed. False (IPA then tries grub) when
 * efibootmgr is missing or the ESP has no loader even after preservation.
 */
export async function setupUefiBoot(ctx: CommandContext, device: string, p: InstallBootloaderParams, opts: BootloaderOptions = {}): Promise<boolean> {
  const efibootmgr = new Efibootmgr(opts.efibootmgr ?? 'efibootmgr', opts.runBytes ?? runCommandBytes, ctx.signal);
  try {
    await efibootmgr.version();
  } catch (err) {
    if (err instanceof ToolError && err.missing) {
      ctx.log.warn('efibootmgr is not available in the ramdisk');
      return false;
    }
    throw err;
  }
  let disk = device;
  try {
    if (isMdDevice(device)) return await setupUefiBootOnRaid(ctx, efibootmgr, device, p, opts);
    const state = (await prepareEsp(ctx, device, p, opts, true))!;
    disk = state.disk;
    if (state.loaders.length === 0) {
      ctx.log.warn({ esp: state.esp.path }, 'Empty EFI partition detected.');
      return false;
    }
    await registerLoaders(ctx, efibootmgr, await efibootmgr.records(), state.disk, state.esp.number, await bootEntries(ctx, state));
    await addFstabEntry(ctx, state, p);
    await sync(ctx);
    return true;
  } catch (err) {
    throw uefiFailure(disk, err);
  }
}

/**
 * UEFI on a software RAID root (IPA's manage_uefi for an md device): the ESP moves onto the
 * ESP RAID (espOnRaid), and every member of the ESP RAID gets its own entries.
 */
async function setupUefiBootOnRaid(ctx: CommandContext, efibootmgr: Efibootmgr, md: string, p: InstallBootloaderParams, opts: BootloaderOptions): Promise<boolean> {
  const state = await espOnRaid(ctx, md, p, opts, (s) => s.loaders.length > 0);
  if (!state) return false;
  await registerOnMembers(ctx, efibootmgr, state.esp.path, await bootEntries(ctx, state), opts);
  await addFstabEntry(ctx, state, p);
  return true;
}

/**
 * The ESP of a software RAID root on the ESP RAID (IPA's prepare_boot_partitions_for_softraid
 * for UEFI): the loaders are found on the image's ESP inside the array (after preservation
 * for a partition image), the ESP RAID across the holder disks is made (or the one an
 * earlier deployment left is reused), and the image's ESP is copied onto it and wiped, so
 * only one ESP exists, one the firmware can read on every disk. Returns the ESP RAID's state;
 * undefined when there is nothing to boot: an image ESP that is not `bootable` (nothing
 * changed; IPA returns before the RAID work) or no image ESP (the ESP RAID is formatted
 * empty). A second call after a successful one uses the ESP RAID and writes nothing.
 */
async function espOnRaid(ctx: CommandContext, md: string, p: InstallBootloaderParams, opts: BootloaderOptions, bootable: (state: EspState) => boolean): Promise<EspState | undefined> {
  const holders = await raidHolderDisks(md, opts.sysRoot);
  const guard = { allowedVia: holders };
  const existing = await findEspRaid(ctx, opts.procRoot);
  if (existing && (await imageEspMoved(ctx, md, p, opts, guard))) {
    ctx.log.info({ md: existing }, `the image's ESP on ${md} was moved to the ESP RAID ${existing} before; using its loaders`);
    return await espRaidState(ctx, md, existing, guard, bootable);
  }
  const image = await prepareEsp(ctx, md, p, opts, false, guard);
  if (image && !bootable(image)) {
    ctx.log.warn({ esp: image.esp.path }, 'Empty EFI partition detected.');
    return undefined;
  }
  if (existing) ctx.log.info({ md: existing }, `reusing the ESP RAID ${existing}`);
  const espMd = existing ?? (await createEspRaid(ctx, holders, opts));
  await ctx.diskGuard.check(espMd, guard);
  if (!image) {
    ctx.log.info({ md: espMd }, `the image on ${md} has no ESP: formatting ${espMd} as an empty one`);
    await ctx.run('mkfs.vfat', ['-n', 'efi-part', espMd]);
    await sync(ctx);
    ctx.log.warn({ esp: espMd }, 'Empty EFI partition detected.');
    return undefined;
  }
  await copyEsp(ctx, image.esp.path, espMd, opts.sysRoot);
  await ctx.diskGuard.check(image.esp.path, guard);
  ctx.log.info({ esp: image.esp.path }, `Erasing EFI partition ${image.esp.path}`);
  await ctx.run('wipefs', ['-a', image.esp.path]);
  const state = await espRaidState(ctx, md, espMd, guard, bootable);
  return state && { ...state, preservedFrom: image.preservedFrom };
}

/** What the ESP RAID holds and its loaders by IPA's search; undefined (with IPA's warning) unless `bootable`. */
async function espRaidState(ctx: AgentContext, md: string, espMd: string, raidGuard: GuardOptions, bootable: (state: EspState) => boolean): Promise<EspState | undefined> {
  const entries = await listEsp(ctx.run, espMd);
  const state: EspState = { disk: md, esp: { path: espMd, number: 0 }, entries, loaders: findEfiBootloaders(entries), raidGuard };
  if (bootable(state)) return state;
  ctx.log.warn({ esp: espMd }, 'Empty EFI partition detected.');
  return undefined;
}

/** The entries on every member of the ESP RAID, labelled `<label> (RAID, part<i>)` (IPA). */
async function registerOnMembers(ctx: CommandContext, efibootmgr: Efibootmgr, espMd: string, entries: readonly BootEntry[], opts: BootloaderOptions): Promise<void> {
  const records = await efibootmgr.records();
  for (const [i, member] of (await espRaidMembers(espMd, opts.sysRoot)).entries()) {
    await registerLoaders(ctx, efibootmgr, records, member.path, member.number, entries, ` (RAID, part${i})`);
  }
  await sync(ctx);
}

/**
 * Whether an earlier install_bootloader moved the image's ESP away: the partition table of
 * the image still has the ESP, but `wipefs -a` left no filesystem on it.
 */
async function imageEspMoved(ctx: CommandContext, md: string, p: InstallBootloaderParams, opts: BootloaderOptions, guard: GuardOptions): Promise<boolean> {
  await ctx.diskGuard.check(md, guard);
  await rescanPartitions(ctx.run, md);
  const esp = await findEsp(ctx.run, md, p.efi_system_part_uuid, opts.sysRoot).catch(() => undefined);
  return esp !== undefined && (await probeDevice(ctx.run, esp.path)).TYPE === undefined;
}

/**
 * The target boots UEFI but the ramdisk did not boot via UEFI, so there is no NVRAM to write
 * (IPA's _efi_boot_setup returns None here and does nothing for UEFI). The firmware will then
 * start the removable-media loader \EFI\BOOT\BOOT<ARCH>.EFI, so the ESP gets one copied from
 * the image's own loaders when it has none (see planFallbackLoader), after the same
 * preservation as the UEFI path for an empty ESP; on a software RAID root, onto the ESP RAID
 * the ESP is moved to as on the UEFI path (IPA leaves a whole-disk image's ESP inside the
 * array, where no firmware finds it). A whole-disk image without an ESP, or whose ESP has no
 * loader for this architecture, is left as it is (false: IPA's outcome).
 */
export async function setupUefiWithoutNvram(ctx: CommandContext, device: string, p: InstallBootloaderParams, opts: BootloaderOptions = {}): Promise<boolean> {
  const wholeDisk = !namesPartition(p.root_uuid);
  let disk = device;
  try {
    // On a software RAID root the ESP moves onto the ESP RAID first: the firmware cannot read
    // one inside the array, but reads each member of the ESP RAID as a plain FAT.
    const arch = efiArchOf(opts.arch ?? process.arch);
    const target = fallbackLoaderPath(arch);
    const raid = isMdDevice(device);
    const bootable = (s: EspState) => findEntry(s.entries, target) !== undefined || planFallbackLoader(s.entries, arch) !== undefined;
    const state = raid ? await espOnRaid(ctx, device, p, opts, bootable) : await prepareEsp(ctx, device, p, opts, !wholeDisk);
    if (!state) {
      if (!raid) ctx.log.info({ device }, 'the whole-disk image has no EFI system partition; leaving it as it is');
      return false;
    }
    disk = state.disk;
    const csv = state.loaders.find(isCsv);
    const plan = planFallbackLoader(state.entries, arch, csv !== undefined ? (await csvLoader(ctx, state, csv)).path : undefined);
    if (plan) {
      await guardEsp(ctx, state);
      await writeEspFiles(ctx.run, state.esp.path, state.entries, plan.copies.map((c) => ({ from: `::/${c.from}`, to: c.to })));
      ctx.log.info({ esp: state.esp.path, loader: plan.loader, copies: plan.copies }, `copied ${efiPath(plan.loader)} to the removable-media path ${efiPath(target)}`);
    } else if (!findEntry(state.entries, target)) {
      ctx.log.warn({ esp: state.esp.path, arch }, `Empty EFI partition detected: no boot loader for ${arch} on it`);
      return false;
    }
    await addFstabEntry(ctx, state, p);
    await sync(ctx);
    ctx.log.warn(
      { esp: state.esp.path, loader: efiPath(target) },
      `The ramdisk did not boot via UEFI, so no UEFI boot entry was written to NVRAM; the machine will boot from ${efiPath(target)} on ${state.raidGuard ? `the ESP RAID ${state.esp.path} (on each of its member disks)` : `partition ${state.esp.number} of ${state.disk}`} (the removable-media path)`,
    );
    return true;
  } catch (err) {
    throw uefiFailure(disk, err);
  }
}
