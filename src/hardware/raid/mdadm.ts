import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { softwareRaidError } from '../../errors.ts';
import { ToolError, type RunCommand } from '../../run.ts';

/**
 * What the agent reads from mdadm and /proc/mdstat. mdadm runs with LC_ALL=C (IPA's
 * use_standard_locale) because its messages are matched, not just shown.
 */
export const MDADM_ENV = { LC_ALL: 'C' };

/** An md array as /proc/mdstat lists it. */
export interface MdstatArray {
  /** `/dev/md0` */
  device: string;
  /** `active`, `inactive`, `active (auto-read-only)` */
  state: string;
  /** `raid1`, ... ; absent for an inactive array */
  level: string | null;
  /** `/dev/sda1`, ... in the order listed */
  members: string[];
}

/**
 * /proc/mdstat (md.c's md_seq_show): `md0 : active raid1 sdb1[1] sda1[0]`, then indented
 * detail lines. Member entries carry `[role]` and flags `(F)` failed, `(S)` spare, `(W)`...
 */
export function parseMdstat(text: string): MdstatArray[] {
  const arrays: MdstatArray[] = [];
  for (const line of text.split('\n')) {
    const m = /^(md\w*)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const words = m[2]!.trim().split(/\s+/);
    const stateWords = [words.shift() ?? ''];
    // "active (auto-read-only) raid1 ..." and "active (read-only) ..."
    while (words[0]?.startsWith('(')) stateWords.push(words.shift()!);
    const level = words[0] && !/\[\d+\]/.test(words[0]) ? words.shift()! : null;
    const members = words.filter((w) => /\[\d+\]/.test(w)).map((w) => `/dev/${w.replace(/\[.*$/, '')}`);
    arrays.push({ device: `/dev/${m[1]}`, state: stateWords.join(' '), level, members });
  }
  return arrays;
}

/**
 * IPA's volume name of an md array from the `Name :` line of --detail or --examine:
 * `host:name (local to host host)` or `name`, the name without the homehost and comment.
 */
export function volumeNameOf(output: string): string | null {
  const line = output.split('\n').find((l) => /^\s*Name\s*:/.test(l));
  if (line === undefined) return null;
  const value = line.slice(line.indexOf(':') + 1).trim();
  const parts = value.split(':');
  const candidate = parts.length === 2 ? parts[1]! : parts.length === 1 ? parts[0]! : null;
  if (candidate === null) return null;
  return candidate.trim().split(/\s+/)[0] || null;
}

function field(output: string, name: string): string | null {
  const re = new RegExp(`^\\s*${name}\\s*:\\s*(.*?)\\s*$`, 'm');
  return re.exec(output)?.[1] ?? null;
}

export interface MdDetail {
  /** The array UUID, in mdadm's `xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx` form. */
  uuid: string | null;
  volumeName: string | null;
  level: string | null;
  /** Devices in the table at the end (active, spare, faulty); `removed` slots have none. */
  components: string[];
}

/** `mdadm --detail <md>` (Detail.c): `key : value` lines, then the device table. */
export function parseMdadmDetail(output: string): MdDetail {
  const components: string[] = [];
  for (const line of output.split('\n')) {
    // "       0     253        1        0      active sync   /dev/vda1"
    // "       -       0        0        1      removed"
    const m = /^\s*(?:\d+|-)\s+\d+\s+\d+\s+(?:\d+|-)\s+.*?(\/dev\/\S+)\s*$/.exec(line);
    if (m) components.push(m[1]!);
  }
  return { uuid: field(output, 'UUID'), volumeName: volumeNameOf(output), level: field(output, 'Raid Level'), components };
}

export interface MdExamine {
  arrayUuid: string | null;
  volumeName: string | null;
}

/** `mdadm --examine <member>` for a 1.x superblock (super1.c examine_super1). */
export function parseMdadmExamine(output: string): MdExamine {
  // 0.90 superblocks print "UUID :" where 1.x prints "Array UUID :".
  return { arrayUuid: field(output, 'Array UUID') ?? field(output, 'UUID'), volumeName: volumeNameOf(output) };
}

/** mdadm's words for "this device carries no md metadata" (Examine.c, super1/super0 load). */
export function isNoSuperblock(err: unknown): boolean {
  return err instanceof ToolError && /No md superblock detected/.test(`${err.message}\n${err.stderr}`);
}

/**
 * The md superblock on `device`, or undefined without one. This reads the device itself and
 * works without the md driver; any other failure is the caller's to judge (IPA: a failure
 * on a known component fails the step, one in the final sweep is only logged).
 */
export async function examine(run: RunCommand, device: string): Promise<MdExamine | undefined> {
  try {
    return parseMdadmExamine(await run('mdadm', ['--examine', device], { env: MDADM_ENV }));
  } catch (err) {
    if (isNoSuperblock(err)) return undefined;
    throw err;
  }
}

export async function detail(run: RunCommand, md: string): Promise<MdDetail | undefined> {
  try {
    return parseMdadmDetail(await run('mdadm', ['--detail', md], { env: MDADM_ENV }));
  } catch {
    return undefined;
  }
}

/**
 * Whether the kernel can run md arrays at all: /proc/mdstat exists once md_mod is loaded
 * (built in, or after `modprobe md_mod`, which a ramdisk may need since nothing has opened
 * an md device yet). Without it `mdadm --create` fails after the disks are partitioned, so
 * create_configuration asks first and refuses before any write.
 */
export async function ensureMdDriver(run: RunCommand, procRoot = '/proc'): Promise<void> {
  const mdstat = join(procRoot, 'mdstat');
  if (await exists(mdstat)) return;
  await run('modprobe', ['md_mod']).catch(() => undefined);
  if (await exists(mdstat)) return;
  throw softwareRaidError(
    `This kernel has no md (software RAID) driver: ${mdstat} does not exist and "modprobe md_mod" did not provide it. No disk was changed; boot a ramdisk whose kernel has CONFIG_BLK_DEV_MD (md_mod, raid0/raid1/raid10/raid456).`,
  );
}

/** The arrays the kernel runs; none (not an error) when there is no md driver. */
export async function mdArrays(procRoot = '/proc'): Promise<MdstatArray[]> {
  const text = await readFile(join(procRoot, 'mdstat'), 'utf8').catch(() => undefined);
  return text === undefined ? [] : parseMdstat(text);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}
