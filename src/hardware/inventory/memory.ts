import { readFile, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunCommand } from '../../run.ts';

/** What a later deploy can still use: free RAM and free space of the tmpfs mounts. */
export interface MemoryHeadroom {
  ram_available_bytes: number | null;
  tmpfs: { mount: string; size_bytes: number; free_bytes: number }[];
}

export interface MemoryInfo {
  /** Usable RAM in bytes (MemTotal). */
  total: number | null;
  /** Installed RAM in MiB (the DIMMs), which is more than `total`. */
  physical_mb: number | null;
  /** Ours: not in IPA's inventory; Ironic ignores keys it does not know. */
  headroom: MemoryHeadroom;
}

export function meminfoBytes(meminfo: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo);
  return m ? Number(m[1]) * 1024 : null;
}

/**
 * `dmidecode -t 17` (Memory Device): the sum of the `Size:` of populated slots, in MiB.
 * IPA reads the same SMBIOS table through lshw; dmidecode is smaller and in every ramdisk.
 */
export function dimmMegabytes(dmidecode: string): number | null {
  let total = 0;
  let found = false;
  for (const m of dmidecode.matchAll(/^\s*Size:\s+(\d+)\s+(kB|MB|GB|TB)\s*$/gm)) {
    const unit = { kB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 * 1024 }[m[2] as 'kB' | 'MB' | 'GB' | 'TB'];
    total += Number(m[1]) * unit;
    found = true;
  }
  return found ? Math.round(total) : null;
}

/** Without SMBIOS (virtual machines, dmidecode missing): the memory blocks the kernel brought online. */
async function sysfsMegabytes(sysRoot: string): Promise<number | null> {
  const dir = join(sysRoot, 'devices/system/memory');
  const blockSize = Number.parseInt((await readFile(join(dir, 'block_size_bytes'), 'utf8').catch(() => '')).trim(), 16);
  if (!Number.isFinite(blockSize) || blockSize <= 0) return null;
  let online = 0;
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!/^memory\d+$/.test(entry)) continue;
    if ((await readFile(join(dir, entry, 'online'), 'utf8').catch(() => '0')).trim() === '1') online++;
  }
  return online > 0 ? Math.round((online * blockSize) / 2 ** 20) : null;
}

/** tmpfs mounts from /proc/mounts with their size and free space (statfs). */
export async function tmpfsHeadroom(procMounts: string): Promise<MemoryHeadroom['tmpfs']> {
  const result: MemoryHeadroom['tmpfs'] = [];
  for (const line of procMounts.split('\n')) {
    const [, mount, type] = line.split(' ');
    if (type !== 'tmpfs' || !mount) continue;
    const path = mount.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (result.some((r) => r.mount === path)) continue;
    try {
      const s = await statfs(path);
      result.push({ mount: path, size_bytes: s.blocks * s.bsize, free_bytes: s.bavail * s.bsize });
    } catch {
      // a mount we may not look into
    }
  }
  return result;
}

export async function memoryHeadroom(procRoot = '/proc'): Promise<MemoryHeadroom> {
  const [meminfo, mounts] = await Promise.all([
    readFile(join(procRoot, 'meminfo'), 'utf8').catch(() => ''),
    readFile(join(procRoot, 'mounts'), 'utf8').catch(() => ''),
  ]);
  return { ram_available_bytes: meminfoBytes(meminfo, 'MemAvailable'), tmpfs: await tmpfsHeadroom(mounts) };
}

export async function readMemory(run: RunCommand, roots: { procRoot?: string; sysRoot?: string } = {}): Promise<MemoryInfo> {
  const procRoot = roots.procRoot ?? '/proc';
  const meminfo = await readFile(join(procRoot, 'meminfo'), 'utf8').catch(() => '');
  const dmi = await run('dmidecode', ['-t', '17']).catch(() => '');
  return {
    total: meminfoBytes(meminfo, 'MemTotal'),
    physical_mb: dimmMegabytes(dmi) ?? (await sysfsMegabytes(roots.sysRoot ?? '/sys')),
    headroom: await memoryHeadroom(procRoot),
  };
}
