import { invalidCommandParams } from '../errors.ts';

/**
 * The partition-image layout IPA's `work_on_disk` builds (spec §9.6), as data: which
 * partitions, in which order, where, and with which type. Pure, so every decision is
 * unit-tested and nothing touches a disk before the whole plan has been checked.
 */

export type BootMode = 'uefi' | 'bios';
export type DiskLabel = 'gpt' | 'msdos';
export type Role = 'efi system partition' | 'BIOS Boot partition' | 'PReP Boot partition' | 'ephemeral' | 'swap' | 'configdrive' | 'root';

export interface LayoutInput {
  /** Disk size in bytes. */
  diskBytes: number;
  rootMb: number;
  swapMb?: number;
  ephemeralMb?: number;
  /** Exact config drive size in bytes (rounded up to MiB, §9.7). */
  configDriveBytes?: number;
  bootMode: BootMode;
  /** Requested label; uefi forces gpt (§9.6). */
  diskLabel?: DiskLabel;
  cpuArch?: string;
  efiSystemPartitionSizeMb?: number;
}

export interface PlannedPartition {
  number: number;
  role: Role;
  /** MiB from the start of the disk. */
  startMib: number;
  sizeMib: number;
  /** sgdisk type code for gpt, MBR type byte (hex) for msdos. */
  type: string;
  bootable: boolean;
}

export interface Layout {
  label: DiskLabel;
  partitions: PlannedPartition[];
}

const MIB = 1024 * 1024;
const GPT = { esp: 'EF00', bios: 'EF02', prep: '4100', swap: '8200', linux: '8300' } as const;
const MBR = { esp: 'ef', prep: '41', swap: '82', linux: '83' } as const;

function isPpc(arch: string | undefined): boolean {
  return arch !== undefined && arch.startsWith('ppc64');
}

/** Disk label: gpt for uefi, else the requested one, default msdos (§9.6). */
export function chooseLabel(bootMode: BootMode, requested: DiskLabel | undefined): DiskLabel {
  if (bootMode === 'uefi') return 'gpt';
  return requested ?? 'msdos';
}

function checkSize(name: string, value: number | undefined, allowZero: boolean): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw invalidCommandParams(`${name} must be ${allowZero ? 'a non-negative' : 'a positive'} integer number of MiB, got ${String(value)}`);
  }
  return value;
}

/**
 * Plan the layout: first partition at 1 MiB, back to back, in §9.6's order (boot partition,
 * ephemeral, swap, config drive, root last so growpart can extend it). Throws IPA's
 * InvalidCommandParamsError for bad sizes, a layout that does not fit, or more than four
 * primary partitions on msdos (IPA only creates primaries).
 */
export function planLayout(input: LayoutInput): Layout {
  const root = checkSize('root_mb', input.rootMb, false);
  const swap = checkSize('swap_mb', input.swapMb, true);
  const ephemeral = checkSize('ephemeral_mb', input.ephemeralMb, true);
  const esp = checkSize('efi_system_partition_size', input.efiSystemPartitionSizeMb ?? 550, false);
  if (input.configDriveBytes !== undefined && (!Number.isInteger(input.configDriveBytes) || input.configDriveBytes <= 0)) {
    throw invalidCommandParams(`config drive size must be a positive number of bytes, got ${String(input.configDriveBytes)}`);
  }
  const label = chooseLabel(input.bootMode, input.diskLabel);
  const ppc = isPpc(input.cpuArch);
  const wanted: Array<{ role: Role; size: number; gpt: string; mbr: string; bootable: boolean }> = [];
  if (input.bootMode === 'uefi') {
    wanted.push({ role: 'efi system partition', size: esp, gpt: GPT.esp, mbr: MBR.esp, bootable: true });
  } else if (ppc) {
    wanted.push({ role: 'PReP Boot partition', size: 8, gpt: GPT.prep, mbr: MBR.prep, bootable: label === 'msdos' });
  } else if (label === 'gpt') {
    wanted.push({ role: 'BIOS Boot partition', size: 1, gpt: GPT.bios, mbr: '', bootable: false });
  }
  if (ephemeral > 0) wanted.push({ role: 'ephemeral', size: ephemeral, gpt: GPT.linux, mbr: MBR.linux, bootable: false });
  if (swap > 0) wanted.push({ role: 'swap', size: swap, gpt: GPT.swap, mbr: MBR.swap, bootable: false });
  if (input.configDriveBytes !== undefined) {
    wanted.push({ role: 'configdrive', size: Math.ceil(input.configDriveBytes / MIB), gpt: GPT.linux, mbr: MBR.linux, bootable: false });
  }
  wanted.push({ role: 'root', size: root, gpt: GPT.linux, mbr: MBR.linux, bootable: input.bootMode === 'bios' && label === 'msdos' && !ppc });

  if (label === 'msdos' && wanted.length > 4) {
    throw invalidCommandParams(`an msdos label holds at most 4 primary partitions, this layout needs ${wanted.length} (${wanted.map((w) => w.role).join(', ')})`);
  }
  // 1 MiB lead-in; gpt also needs 33 sectors for the backup header, rounded to 1 MiB.
  const usableMib = Math.floor(input.diskBytes / MIB) - 1 - (label === 'gpt' ? 1 : 0);
  const total = wanted.reduce((sum, w) => sum + w.size, 0);
  if (total > usableMib) {
    throw invalidCommandParams(`the partition layout needs ${total} MiB but the disk has ${usableMib} MiB usable`);
  }
  let start = 1;
  const partitions = wanted.map((w, i) => {
    const p: PlannedPartition = { number: i + 1, role: w.role, startMib: start, sizeMib: w.size, type: label === 'gpt' ? w.gpt : w.mbr, bootable: w.bootable };
    start += w.size;
    return p;
  });
  return { label, partitions };
}

/** `<dev><n>`, or `<dev>p<n>` when the device name ends in a digit (nvme, md, loop) (§9.6). */
export function partitionPath(device: string, number: number): string {
  return /\d$/.test(device) ? `${device}p${number}` : `${device}${number}`;
}

/** The sgdisk arguments writing a gpt layout in one call (new table, then each partition). */
export function sgdiskArgs(device: string, layout: Layout): string[] {
  if (layout.label !== 'gpt') throw new Error('sgdiskArgs needs a gpt layout');
  const args = ['-o'];
  for (const p of layout.partitions) {
    args.push('-n', `${p.number}:${p.startMib}M:+${p.sizeMib}M`, '-t', `${p.number}:${p.type}`, '-c', `${p.number}:${p.role}`);
    if (p.bootable && p.role !== 'efi system partition') args.push('-A', `${p.number}:set:2`);
  }
  args.push(device);
  return args;
}

/** The sfdisk script writing an msdos layout (fed on stdin to `sfdisk --label dos DEV`); sfdisk counts the device's logical sectors. */
export function sfdiskScript(layout: Layout, sectorSize = 512): string {
  if (layout.label !== 'msdos') throw new Error('sfdiskScript needs an msdos layout');
  const lines = ['label: dos', 'unit: sectors'];
  for (const p of layout.partitions) {
    const sectors = (n: number) => n * (MIB / sectorSize);
    lines.push(`start=${sectors(p.startMib)}, size=${sectors(p.sizeMib)}, type=${p.type}${p.bootable ? ', bootable' : ''}`);
  }
  return `${lines.join('\n')}\n`;
}
