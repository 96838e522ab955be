import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { makeAgent, sendRequest } from './http.ts';
import type { Clock } from '../clock.ts';
import type { AgentConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';

/** `callback_url` = `<protocol>://<host>:<port>`, IPv6 literals in brackets, no path (spec §1.4). */
export function formatCallbackUrl(protocol: 'http' | 'https', host: string, port: number): string {
  const bare = host.replace(/^\[|\]$/g, '');
  return `${protocol}://${isIP(bare) === 6 ? `[${bare}]` : bare}:${port}`;
}

/** The token after `src` in `ip route get` output, unless it is link-local (spec §12.11). */
export function parseRouteSource(output: string): string | undefined {
  const firstLine = output.split('\n')[0] ?? '';
  const match = /\bsrc\s+(\S+)/.exec(firstLine);
  if (!match) return undefined;
  const src = match[1]!;
  if (src.startsWith('169.254.') || /^fe[89ab][0-9a-f]:/i.test(src)) return undefined;
  return src;
}

export interface AdvertiseDeps {
  run: RunCommand;
  clock: Clock;
  log: Logger;
}

export class AdvertiseAddressError extends Error {
  override name = 'LookupAgentIPError';
}

/**
 * The address the conductor should call us on (spec §1.4): `ipa-advertise-host` as given,
 * else the IPv4 address of `ipa-network-interface`, else the source address of the route
 * to each reachable Ironic API host, tried `ipa-ip-lookup-attempts` times.
 */
export async function findAdvertiseHost(config: AgentConfig, deps: AdvertiseDeps): Promise<string> {
  if (config.advertiseHost) return config.advertiseHost;
  if (config.networkInterface) return interfaceAddress(config.networkInterface, deps);

  const hosts = await reachableApiHosts(config, deps.log);
  const ips: string[] = [];
  for (const host of hosts) {
    if (isIP(host)) ips.push(host);
    else {
      try {
        ips.push(...(await dnsLookup(host, { all: true })).map((a) => a.address));
      } catch {
        ips.push(host);
      }
    }
  }
  for (let attempt = 1; attempt <= config.ipLookupAttempts; attempt++) {
    for (const ip of ips) {
      try {
        const src = parseRouteSource(await deps.run('ip', ['route', 'get', ip]));
        if (src) return src;
      } catch (err) {
        deps.log.debug({ ip, err: String(err) }, 'ip route get failed');
      }
    }
    if (attempt < config.ipLookupAttempts) await deps.clock.sleep(config.ipLookupSleep);
  }
  throw new AdvertiseAddressError(
    `cannot find a routable IP address for the agent towards ${ips.join(', ')}; set ipa-advertise-host or ipa-network-interface`,
  );
}

async function interfaceAddress(name: string, deps: AdvertiseDeps): Promise<string> {
  const out = await deps.run('ip', ['-j', '-4', 'addr', 'show', 'dev', name]);
  const parsed: unknown = JSON.parse(out);
  const addr = Array.isArray(parsed)
    ? (parsed[0] as { addr_info?: { local?: string }[] } | undefined)?.addr_info?.find((a) => a.local)?.local
    : undefined;
  if (!addr) throw new AdvertiseAddressError(`interface ${name} (ipa-network-interface) has no IPv4 address`);
  return addr;
}

/** Hosts of the API URLs that answer an unverified GET at all; all of them if none answers. */
async function reachableApiHosts(config: AgentConfig, log: Logger): Promise<string[]> {
  const all = config.apiUrls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ''));
  const reachable: string[] = [];
  for (const url of config.apiUrls) {
    const agent = makeAgent(url.startsWith('https:') ? 'https:' : 'http:', { insecure: true, tlsMinVersion: '1.2' });
    try {
      await sendRequest(url, { method: 'GET', headers: {}, timeoutSeconds: config.httpRequestTimeout, agent });
      reachable.push(new URL(url).hostname.replace(/^\[|\]$/g, ''));
    } catch (err) {
      log.debug({ url, err: String(err) }, 'API URL not reachable while looking for the advertise address');
    } finally {
      agent.destroy();
    }
  }
  return reachable.length > 0 ? reachable : all;
}
