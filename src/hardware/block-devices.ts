import { readFile, readdir, readlink, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import type { RunCommand } from '../run.ts';

/** A disk as the inventory reports it and root device hints match it (spec §10.1, §10.2). */
export interface BlockDevice {
  name: string;
  model: string | null;
  size: number;
  rotational: boolean;
  wwn: string | null;
  serial: string | null;
  vendor: string | null;
  wwn_with_extension: string | null;
  wwn_vendor_extension: string | null;
  hctl: string | null;
  by_path: string | null;
  logical_sectors: number | null;
  physical_sectors: number | null;
  tran: string | null;
  /** lsblk type: disk, loop, raid1, mpath... Not sent in the inventory. */
  type: string;
}

/** IPA's columns, plus the parent name we need to drop multipath paths (spec §10.2). */
export const LSBLK_COLUMNS = 'KNAME,MODEL,SIZE,ROTA,TYPE,UUID,PARTUUID,SERIAL,WWN,LOG-SEC,PHY-SEC,TRAN,PKNAME';

const text = z.string().nullish().transform((v) => (v === undefined || v === null || v.trim() === '' ? null : v.trim()));
const num = z.union([z.number(), z.string().regex(/^\d+$/)]).nullish().transform((v) => (v === undefined || v === null ? null : Number(v)));
const bool = z.union([z.boolean(), z.enum(['0', '1'])]).nullish().transform((v) => v === true || v === '1');

const LsblkRow = z.looseObject({
  kname: z.string(),
  model: text,
  size: num,
  rota: bool,
  type: z.string(),
  serial: text,
  wwn: text,
  'log-sec': num,
  'phy-sec': num,
  tran: text,
  pkname: text,
});
const LsblkOutput = z.object({ blockdevices: z.array(LsblkRow) });
type LsblkRow = z.output<typeof LsblkRow>;

export interface ListOptions {
  /** Loop devices count as disks only when asked (an allowlist names them: tests, the demo). */
  includeLoop?: boolean;
}

/**
 * The disks in `lsblk -bia --json` output (spec §10.2, vectors §12.4): type `disk`, any
 * `raid*` and `mpath`; not floppies, ram, zram, empty devices, partitions, LVM, ROMs, or
 * disks that are paths of a multipath map (the map is kept). Loop devices only when allowed.
 */
export function parseLsblk(json: string, opts: ListOptions = {}): BlockDevice[] {
  let parsed: z.output<typeof LsblkOutput>;
  try {
    parsed = LsblkOutput.parse(JSON.parse(json));
  } catch (err) {
    throw new Error(`unexpected lsblk output: ${err instanceof Error ? err.message : String(err)}`);
  }
  const rows = parsed.blockdevices;
  const multipathMembers = new Set(rows.filter((r) => r.type === 'mpath' && r.pkname).map((r) => r.pkname));
  const seen = new Set<string>();
  const disks: BlockDevice[] = [];
  for (const row of rows) {
    if (seen.has(row.kname)) continue;
    seen.add(row.kname);
    if (!isDiskRow(row, opts)) continue;
    if (multipathMembers.has(row.kname)) continue;
    disks.push({
      name: `/dev/${row.kname}`,
      model: row.model,
      size: row.size ?? 0,
      rotational: row.rota,
      wwn: row.wwn,
      serial: row.serial,
      vendor: null,
      wwn_with_extension: null,
      wwn_vendor_extension: null,
      hctl: null,
      by_path: null,
      logical_sectors: row['log-sec'],
      physical_sectors: row['phy-sec'],
      tran: row.tran,
      type: row.type,
    });
  }
  return disks;
}

function isDiskRow(row: LsblkRow, opts: ListOptions): boolean {
  if (!row.size) return false;
  if (/^(fd|ram|zram)/.test(row.kname)) return false;
  if (row.type === 'loop') return opts.includeLoop === true;
  return row.type === 'disk' || row.type === 'mpath' || row.type.includes('raid');
}

export interface DiskSources {
  run: RunCommand;
  sysRoot?: string;
  devRoot?: string;
}

/**
 * The machine's disks: lsblk, then what lsblk cannot see without udev from sysfs (vendor,
 * SCSI address) and /dev/disk/by-path when it exists. No udev runs in the ramdisk.
 */
export async function listDisks(src: DiskSources, opts: ListOptions = {}): Promise<BlockDevice[]> {
  const out = await src.run('lsblk', ['-bia', '--json', '-o', LSBLK_COLUMNS]);
  const disks = parseLsblk(out, opts);
  const byPath = await byPathLinks(join(src.devRoot ?? '/dev', 'disk/by-path'));
  for (const disk of disks) {
    const k = basename(disk.name);
    const deviceDir = join(src.sysRoot ?? '/sys', 'class/block', k, 'device');
    disk.vendor = await readTrimmed(join(deviceDir, 'vendor'));
    const scsi = await readdir(join(deviceDir, 'scsi_device')).catch(() => [] as string[]);
    disk.hctl = scsi.length === 1 ? scsi[0]! : null;
    disk.by_path = byPath.get(disk.name) ?? null;
  }
  return disks;
}

async function byPathLinks(dir: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const link = join(dir, entry);
    const target = await readlink(link).then(() => realpath(link)).catch(() => undefined);
    if (target && !map.has(target)) map.set(target, link);
  }
  return map;
}

async function readTrimmed(path: string): Promise<string | null> {
  try {
    const v = (await readFile(path, 'utf8')).trim();
    return v === '' ? null : v;
  } catch {
    return null;
  }
}
