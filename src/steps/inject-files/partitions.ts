import { mkdtemp, readdir, readFile, realpath, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { deploymentError } from '../../errors.ts';
import type { RunCommand } from '../../run.ts';

/** A umount that does not return in this time is reported, not waited for forever. */
const UMOUNT_TIMEOUT_SECONDS = 120;

export interface Partition {
  path: string;
  number: number;
}

/** Partition N of a disk (vectors §12.11): sda1, but nvme0n1p1, md0p1, loop0p1 when the name ends in a digit. */
export function partitionPath(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

/** The partitions the kernel knows for `disk`, by number, from sysfs (no udev in the ramdisk). */
export async function listPartitions(disk: string, sysRoot = '/sys'): Promise<Partition[]> {
  const kname = basename(await realpath(disk));
  const dir = join(sysRoot, 'class/block', kname);
  const parts: Partition[] = [];
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!entry.startsWith(kname)) continue;
    const number = Number((await readFile(join(dir, entry, 'partition'), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(number) && number > 0) parts.push({ path: `/dev/${entry}`, number });
  }
  return parts.sort((a, b) => a.number - b.number);
}

/** The filesystem type blkid probes on the device itself (no udev cache), or undefined. */
export async function probeFilesystem(run: RunCommand, device: string): Promise<string | undefined> {
  try {
    const out = (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device])).trim();
    return out === '' ? undefined : out;
  } catch {
    return undefined; // blkid exits 2 when it finds nothing
  }
}

/** Filesystems inject_files never mounts: not files at all (LVM, RAID members, swap, LUKS). */
export function mountable(fstype: string | undefined): boolean {
  return fstype !== undefined && !/^(LVM2_member|linux_raid_member|swap|crypto_LUKS|BitLocker|zfs_member)$/.test(fstype);
}

/**
 * Partitions mounted by this step, each once, on private directories, and all unmounted at
 * the end whatever happened. nosuid/nodev: nothing on the target runs or opens devices here.
 */
export class Mounts {
  private readonly mounted = new Map<string, string>();
  private readonly run: RunCommand;

  constructor(run: RunCommand) {
    this.run = run;
  }

  async mount(partition: string, fstype: string): Promise<string> {
    const existing = this.mounted.get(partition);
    if (existing) return existing;
    const dir = await mkdtemp(join(tmpdir(), 'ina-inject-'));
    try {
      await this.run('mount', ['-t', fstype, '-o', 'nosuid,nodev', partition, dir]);
    } catch (err) {
      await rmdir(dir).catch(() => undefined);
      throw deploymentError(`inject_files: cannot mount ${partition} (${fstype}): ${err instanceof Error ? err.message : String(err)}`);
    }
    this.mounted.set(partition, dir);
    return dir;
  }

  /** Unmounts everything; the first failure is thrown after all were tried. */
  async unmountAll(): Promise<void> {
    const failures: string[] = [];
    for (const [partition, dir] of [...this.mounted].reverse()) {
      try {
        // Not with the step's signal: after a timeout or a machine-down abort, that signal would
        // stop umount at once and leave the target's filesystem mounted under /tmp.
        await this.run('umount', [dir], { signal: undefined, timeoutSeconds: UMOUNT_TIMEOUT_SECONDS });
        await rmdir(dir);
        this.mounted.delete(partition);
      } catch (err) {
        failures.push(`${partition} on ${dir}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failures.length > 0) throw deploymentError(`inject_files: cannot unmount ${failures.join('; ')}`);
  }
}
