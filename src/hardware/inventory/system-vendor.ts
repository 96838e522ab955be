import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunCommand } from '../../run.ts';
import { parseKeyValues } from './cpu.ts';

export interface SystemVendor {
  product_name: string;
  serial_number: string;
  manufacturer: string;
  firmware: { vendor: string; version: string; build_date: string };
}

const SYSFS_KEYS = {
  product_name: 'product_name',
  serial_number: 'product_serial',
  manufacturer: 'sys_vendor',
  vendor: 'bios_vendor',
  version: 'bios_version',
  build_date: 'bios_date',
} as const;

/** `dmidecode -t system -t bios`: the first value of each key in its section. */
export function vendorFromDmidecode(text: string): SystemVendor {
  const section = (title: string) => parseKeyValues(text.split(/\n(?=Handle )/).find((b) => b.includes(`\n${title}\n`)) ?? '');
  const sys = section('System Information');
  const bios = section('BIOS Information');
  return {
    product_name: sys.get('product name') ?? '',
    serial_number: sys.get('serial number') ?? '',
    manufacturer: sys.get('manufacturer') ?? '',
    firmware: { vendor: bios.get('vendor') ?? '', version: bios.get('version') ?? '', build_date: bios.get('release date') ?? '' },
  };
}

/**
 * system_vendor from SMBIOS (spec §10.2). IPA reads it through lshw; the same data is in
 * sysfs (/sys/class/dmi/id, no tool needed), else dmidecode, else lshw. Empty strings when
 * none can tell (IPA's answer when lshw fails), e.g. on a VM without SMBIOS.
 */
export async function readSystemVendor(run: RunCommand, sysRoot = '/sys'): Promise<SystemVendor> {
  const dir = join(sysRoot, 'class/dmi/id');
  const read = async (key: string) => (await readFile(join(dir, key), 'utf8').catch(() => '')).trim();
  const fromSysfs: SystemVendor = {
    product_name: await read(SYSFS_KEYS.product_name),
    serial_number: await read(SYSFS_KEYS.serial_number),
    manufacturer: await read(SYSFS_KEYS.manufacturer),
    firmware: { vendor: await read(SYSFS_KEYS.vendor), version: await read(SYSFS_KEYS.version), build_date: await read(SYSFS_KEYS.build_date) },
  };
  if (fromSysfs.product_name || fromSysfs.manufacturer) return fromSysfs;
  const dmi = await run('dmidecode', ['-t', 'system', '-t', 'bios']).catch(() => '');
  if (dmi.includes('System Information')) return vendorFromDmidecode(dmi);
  const lshw = await run('lshw', ['-quiet', '-json']).catch(() => '');
  return lshw ? vendorFromLshw(lshw) ?? fromSysfs : fromSysfs;
}

export function vendorFromLshw(json: string): SystemVendor | undefined {
  try {
    const raw = JSON.parse(json) as unknown;
    const top = (Array.isArray(raw) ? raw[0] : raw) as Record<string, unknown> | undefined;
    if (!top) return undefined;
    const core = (top.children as Record<string, unknown>[] | undefined)?.find((c) => c.id === 'core');
    const fw = (core?.children as Record<string, unknown>[] | undefined)?.find((c) => c.id === 'firmware');
    const s = (v: unknown) => (typeof v === 'string' ? v : '');
    return {
      product_name: s(top.product),
      serial_number: s(top.serial),
      manufacturer: s(top.vendor),
      firmware: { vendor: s(fw?.vendor), version: s(fw?.version), build_date: s(fw?.date) },
    };
  } catch {
    return undefined;
  }
}
