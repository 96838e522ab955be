import { readFile } from 'node:fs/promises';
import type { RunCommand } from '../../run.ts';

/** The inventory's cpu object (spec §10.1): no per-core list. */
export interface CpuInfo {
  model_name: string | null;
  frequency: string | null;
  count: number | null;
  architecture: string | null;
  flags: string[];
  socket_count: number | null;
}

/** `lscpu` as `key: value` with lower-cased keys (IPA's parse). */
export function parseKeyValues(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    if (!map.has(key)) map.set(key, line.slice(colon + 1).trim());
  }
  return map;
}

/** The first processor block of /proc/cpuinfo, where flags live when lscpu does not print them. */
export function firstCpuinfoBlock(text: string): Map<string, string> {
  return parseKeyValues(text.split(/\n\s*\n/)[0] ?? '');
}

const int = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);

/**
 * cpu from lscpu (spec §10.2): model, frequency (max MHz, else current MHz; here also the
 * cpuinfo MHz, as virtual machines print neither), count, sockets, architecture, flags.
 */
export function cpuFrom(lscpu: string, cpuinfo: string): CpuInfo {
  const l = parseKeyValues(lscpu);
  const c = firstCpuinfoBlock(cpuinfo);
  const flags = l.get('flags') ?? c.get('flags') ?? '';
  return {
    model_name: l.get('model name') ?? c.get('model name') ?? null,
    frequency: l.get('cpu max mhz') ?? l.get('cpu mhz') ?? c.get('cpu mhz') ?? null,
    count: int(l.get('cpu(s)')),
    architecture: l.get('architecture') ?? null,
    flags: flags.split(/\s+/).filter((f) => f !== ''),
    socket_count: int(l.get('socket(s)')),
  };
}

export async function readCpu(run: RunCommand, procRoot = '/proc'): Promise<CpuInfo> {
  const [lscpu, cpuinfo] = await Promise.all([
    run('lscpu', [], { env: { LC_ALL: 'C' } }).catch(() => ''),
    readFile(`${procRoot}/cpuinfo`, 'utf8').catch(() => ''),
  ]);
  return cpuFrom(lscpu, cpuinfo);
}
