import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RunCommand } from '../run.ts';
import type { LldpTlv } from './lldp.ts';

/** One NIC as the inventory reports it (spec §10.1). */
export interface NetworkInterface {
  name: string;
  mac_address: string;
  ipv4_address: string | null;
  ipv6_address: string | null;
  has_carrier: boolean;
  /** `[type, hex]` TLVs heard on the NIC, with ipa-collect-lldp; null otherwise. */
  lldp: LldpTlv[] | null;
  vendor: string | null;
  product: string | null;
  client_id: null;
  biosdevname: null;
  speed_mbps: number | null;
  pci_address: string | null;
  driver: string | null;
}

interface IpAddrEntry {
  ifname?: string;
  addr_info?: { family?: string; local?: string; scope?: string }[];
}

/**
 * The machine's NICs (spec §10.2): physical devices (with a `device` link), VLANs
 * (`name.<id>`) and bonds, from sysfs, with their first IPv4/IPv6 addresses from `ip -j addr`.
 * MACs beginning with `fa:` are locally assigned by the cloud and dropped, as IPA drops them.
 * `withAddresses: false` skips `ip` when only the MACs are needed (lookup).
 */
export async function listInterfaces(opts: { run: RunCommand; sysRoot?: string; withAddresses?: boolean }): Promise<NetworkInterface[]> {
  const netDir = join(opts.sysRoot ?? '/sys', 'class/net');
  const names = (await readdir(netDir).catch(() => [] as string[])).sort();
  const addresses = opts.withAddresses === false ? new Map<string, { family?: string; local?: string }[]>() : await ipAddresses(opts.run);
  const result: NetworkInterface[] = [];
  for (const name of names) {
    const dir = join(netDir, name);
    const isPhysical = await exists(join(dir, 'device'));
    const isVlan = /\.\d+$/.test(name);
    const isBond = await exists(join(dir, 'bonding'));
    if (!isPhysical && !isVlan && !isBond) continue;
    const mac = (await readText(join(dir, 'address')))?.toLowerCase();
    if (!mac || mac === '00:00:00:00:00:00' || mac.startsWith('fa:')) continue;
    const addrs = addresses.get(name) ?? [];
    const speed = Number(await readText(join(dir, 'speed')));
    result.push({
      name,
      mac_address: mac,
      ipv4_address: addrs.find((a) => a.family === 'inet')?.local ?? null,
      ipv6_address: addrs.find((a) => a.family === 'inet6')?.local ?? null,
      has_carrier: (await readText(join(dir, 'carrier'))) === '1',
      lldp: null,
      vendor: (await readText(join(dir, 'device/vendor'))) ?? null,
      product: (await readText(join(dir, 'device/device'))) ?? null,
      client_id: null,
      biosdevname: null,
      speed_mbps: Number.isFinite(speed) && speed > 0 ? speed : null,
      pci_address: isPhysical ? await linkTarget(join(dir, 'device')) : null,
      driver: isPhysical ? await linkTarget(join(dir, 'device/driver')) : null,
    });
  }
  return result;
}

async function ipAddresses(run: RunCommand): Promise<Map<string, { family?: string; local?: string }[]>> {
  const map = new Map<string, { family?: string; local?: string }[]>();
  try {
    const entries = JSON.parse(await run('ip', ['-j', 'addr', 'show'])) as IpAddrEntry[];
    for (const e of entries) if (e.ifname) map.set(e.ifname, e.addr_info ?? []);
  } catch {
    // no iproute2: interfaces are still listed, without addresses
  }
  return map;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function linkTarget(path: string): Promise<string | null> {
  try {
    return basename(await readlink(path));
  } catch {
    return null;
  }
}
