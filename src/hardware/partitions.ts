import { readFile, readdir, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ToolError, type RunCommand } from '../run.ts';

/** A partition node the kernel knows, from sysfs (no udev needed). */
export interface PartitionNode {
  name: string;
  number: number;
  /** Bytes. */
  size: number;
}

/**
 * The partitions the kernel registered for `disk` (`/sys/class/block/<disk>/<disk>pN/partition`),
 * by number. On this project's test kernel they appear only after `partx -a`; in a ramdisk the
 * kernel registers them itself.
 */
export async function kernelPartitions(disk: string, sysRoot = '/sys'): Promise<PartitionNode[]> {
  const k = basename(disk);
  const dir = join(sysRoot, 'class/block', k);
  const parts: PartitionNode[] = [];
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!entry.startsWith(k)) continue;
    const number = await readNumber(join(dir, entry, 'partition'));
    if (number === undefined) continue;
    const sectors = (await readNumber(join(dir, entry, 'size'))) ?? 0;
    parts.push({ name: `/dev/${entry}`, number, size: sectors * 512 });
  }
  return parts.sort((a, b) => a.number - b.number);
}

/** `/sys/class/block/<k>/holders`: what sits on top of the device (md, dm, bcache). */
export async function holdersOf(device: string, sysRoot = '/sys'): Promise<string[]> {
  return (await readdir(join(sysRoot, 'class/block', basename(device), 'holders')).catch(() => [] as string[])).map((h) => `/dev/${h}`);
}

/** `/sys/class/block/<k>/slaves`: what an md or dm device is built on (its member partitions), by name. */
export async function slavesOf(device: string, sysRoot = '/sys'): Promise<string[]> {
  return (await readdir(join(sysRoot, 'class/block', basename(device), 'slaves')).catch(() => [] as string[])).sort().map((s) => `/dev/${s}`);
}

/** The kernel's number of a partition (`/sys/class/block/<k>/partition`), undefined for a whole disk. */
export async function kernelPartitionNumber(device: string, sysRoot = '/sys'): Promise<number | undefined> {
  return readNumber(join(sysRoot, 'class/block', basename(device), 'partition'));
}

/** The kernel's read-only flag; for a partition the flag of its disk also counts (IPA §11.1 step 3). */
export async function isReadOnly(device: string, sysRoot = '/sys'): Promise<boolean> {
  const k = basename(device);
  if ((await readText(join(sysRoot, 'class/block', k, 'ro'))) === '1') return true;
  const parent = await parentDisk(device, sysRoot);
  return parent !== undefined && (await readText(join(sysRoot, 'class/block', basename(parent), 'ro'))) === '1';
}

/** The disk a partition belongs to, or undefined for a whole disk. */
export async function parentDisk(device: string, sysRoot = '/sys'): Promise<string | undefined> {
  const k = basename(device);
  if ((await readText(join(sysRoot, 'class/block', k, 'partition'))) === undefined) return undefined;
  // /sys/class/block/loop0p1 -> ../../devices/virtual/block/loop0/loop0p1
  const real = await realpath(join(sysRoot, 'class/block', k)).catch(() => undefined);
  return real ? `/dev/${basename(join(real, '..'))}` : undefined;
}

/** One entry of the on-disk partition table, as `sfdisk --json` reads it from the disk itself. */
export interface TableEntry {
  node: string;
  start: number;
  size: number;
  /** GPT type GUID (upper case) or MBR type code (hex, e.g. `fb`). */
  type: string;
  uuid: string | null;
  /** GPT partition name (`uefi-holder-0`); null on MBR or when unnamed. */
  name: string | null;
}

export interface PartitionTable {
  label: string;
  id: string | null;
  sectorSize: number;
  partitions: TableEntry[];
}

const SfdiskOutput = z.object({
  partitiontable: z.looseObject({
    label: z.string(),
    id: z.string().optional(),
    sectorsize: z.number().optional(),
    partitions: z
      .array(z.looseObject({ node: z.string(), start: z.number(), size: z.number(), type: z.string(), uuid: z.string().optional(), name: z.string().optional() }))
      .optional(),
  }),
});

export function parseSfdiskJson(text: string): PartitionTable {
  let parsed: z.output<typeof SfdiskOutput>;
  try {
    parsed = SfdiskOutput.parse(JSON.parse(text));
  } catch (err) {
    throw new Error(`unexpected sfdisk output: ${err instanceof Error ? err.message : String(err)}`);
  }
  const t = parsed.partitiontable;
  return {
    label: t.label,
    id: t.id ?? null,
    sectorSize: t.sectorsize ?? 512,
    partitions: (t.partitions ?? []).map((p) => ({ node: p.node, start: p.start, size: p.size, type: p.type, uuid: p.uuid ?? null, name: p.name ?? null })),
  };
}

/**
 * The partition table on `disk`, read from the disk (it does not need the kernel to have
 * registered the partitions). Undefined when the disk has no table sfdisk recognises.
 */
export async function readPartitionTable(run: RunCommand, disk: string): Promise<PartitionTable | undefined> {
  let out: string;
  try {
    out = await run('sfdisk', ['--json', disk]);
  } catch (err) {
    // sfdisk exits 1 with "does not contain a recognized partition table".
    if (err instanceof ToolError && !err.missing && /partition table/i.test(err.message)) return undefined;
    throw err;
  }
  return out.trim() === '' ? undefined : parseSfdiskJson(out);
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function readNumber(path: string): Promise<number | undefined> {
  const text = await readText(path);
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Size in bytes from sysfs (`size` counts 512-byte units whatever the sector size). */
export async function deviceSize(device: string, sysRoot = '/sys'): Promise<number> {
  const sectors = await readNumber(join(sysRoot, 'class/block', basename(device), 'size'));
  if (sectors === undefined) throw new Error(`the kernel does not list ${device} in sysfs (it vanished?)`);
  return sectors * 512;
}

/** Logical sector size of the device, or of the disk a partition is on. */
export async function logicalSectorSize(device: string, sysRoot = '/sys'): Promise<number> {
  const disk = (await parentDisk(device, sysRoot)) ?? device;
  return (await readNumber(join(sysRoot, 'class/block', basename(disk), 'queue/logical_block_size'))) ?? 512;
}
