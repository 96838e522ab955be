import { readdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ToolError, type RunCommand } from '../../run.ts';

export interface BmcInfo {
  bmc_address: string | null;
  bmc_v6address: string | null;
  bmc_mac?: string;
}

/** IPMI LAN channels IPA probes. */
const CHANNELS = Array.from({ length: 11 }, (_, i) => i + 1);

/** Is there an IPMI character device (/dev/ipmi0, /dev/ipmi/0, /dev/ipmidev/0)? */
export async function ipmiDeviceExists(devRoot = '/dev'): Promise<boolean> {
  const dev = await readdir(devRoot).catch(() => [] as string[]);
  if (dev.some((e) => /^ipmi\d/.test(e))) return true;
  for (const sub of ['ipmi', 'ipmidev']) {
    if ((await readdir(`${devRoot}/${sub}`).catch(() => [] as string[])).length > 0) return true;
  }
  return false;
}

/** `ipmitool lan print N`: `IP Address   : 10.0.0.5`, `MAC Address  : aa:bb:...`. */
export function parseLanPrint(text: string): { ip: string | null; mac: string | null } {
  const ip = /^IP Address\s*:\s*(\S+)/m.exec(text)?.[1] ?? null;
  const mac = /^MAC Address\s*:\s*(\S+)/m.exec(text)?.[1]?.toLowerCase() ?? null;
  return { ip, mac };
}

/** `ipmitool lan6 print N dynamic_addr|static_addr`: the first active, enabled, non-null address. */
export function parseLan6Addresses(text: string, dynamic: boolean): string | null {
  for (const block of text.split(/\n(?=IPv6 (?:Dynamic|Static) Address \d+:)/)) {
    const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.+?)\\s*$`, 'm').exec(block)?.[1];
    const address = field('Address');
    if (!address || /^::(\/\d{1,3})*$/.test(address)) continue;
    const enabled = dynamic ? ['DHCPv6', 'SLAAC'].includes(field('Source/Type') ?? '') : field('Enabled') === 'yes';
    if (field('Status') === 'active' && enabled) return address;
  }
  return null;
}

async function lan(run: RunCommand, args: string[]): Promise<string | undefined> {
  try {
    return await run('ipmitool', args);
  } catch (err) {
    if (err instanceof ToolError && err.missing) throw err;
    return undefined; // "Invalid channel N" and friends: try the next channel
  }
}

/**
 * BMC addresses (spec §10.2): only with an IPMI device and unless Ironic said
 * agent_skip_bmc_detect. IPv4 from `lan print` on channels 1-11 (0.0.0.0 when none is
 * set), IPv6 from `lan6 print` (::/0 when none), the MAC of the first channel with an
 * address. A missing ipmitool gives nulls, as IPA's failure does.
 */
export async function readBmc(run: RunCommand, opts: { skip: boolean; devRoot?: string }): Promise<BmcInfo> {
  if (opts.skip || !(await ipmiDeviceExists(opts.devRoot))) return { bmc_address: null, bmc_v6address: null };
  try {
    let v4: string | null = null;
    let mac: string | undefined;
    for (const ch of CHANNELS) {
      const out = await lan(run, ['lan', 'print', String(ch)]);
      if (out === undefined) continue;
      const { ip, mac: chMac } = parseLanPrint(out);
      if (ip && isIP(ip) === 4 && ip !== '0.0.0.0') {
        v4 = ip;
        if (chMac && chMac !== '00:00:00:00:00:00') mac = chMac;
        break;
      }
    }
    let v6: string | null = null;
    for (const ch of CHANNELS) {
      const dyn = await lan(run, ['lan6', 'print', String(ch), 'dynamic_addr']);
      v6 = dyn ? parseLan6Addresses(dyn, true) : null;
      if (!v6) {
        const stat = await lan(run, ['lan6', 'print', String(ch), 'static_addr']);
        v6 = stat ? parseLan6Addresses(stat, false) : null;
      }
      if (v6) break;
    }
    return { bmc_address: v4 ?? '0.0.0.0', bmc_v6address: v6 ?? '::/0', ...(mac ? { bmc_mac: mac } : {}) };
  } catch {
    return { bmc_address: null, bmc_v6address: null };
  }
}
