import { readFile } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import { imageDownloadFatalError } from './errors.ts';

/**
 * The HTTP client side of image downloads (spec §9.4): one undici dispatcher per request
 * target with IPA's proxy, TLS and credential rules. undici is imported on first use only:
 * its import costs tens of milliseconds the agent's start-up does not need.
 */
let undiciModule: Promise<typeof import('undici')> | undefined;
export const loadUndici = () => (undiciModule ??= import('undici'));

export interface HttpSettings {
  /** Connect and read-idle timeout, seconds (ipa-image-download-connection-timeout). */
  timeoutSeconds: number;
  insecure: boolean;
  cafile: string | undefined;
  /** `image_info.proxies`: per-scheme proxy URLs. */
  proxies: { http?: string; https?: string };
  /** `image_info.no_proxy` (else the NO_PROXY environment variable). */
  noProxy: string | undefined;
  /** The Authorization header value, when the image needs one. */
  authorization: string | undefined;
}

/**
 * Authentication precedence (spec §9.1): `image_request_authorization`, then image_info
 * HTTP Basic credentials (both must be present), then none.
 */
export function authorizationFor(
  imageId: string,
  supplied: string | undefined,
  basic: { user: string | undefined; password: string | undefined } | undefined,
): string | undefined {
  if (supplied) return supplied;
  if (!basic) return undefined;
  const missing = [basic.user ? undefined : 'user', basic.password ? undefined : 'password'].filter(Boolean);
  if (missing.length > 0) {
    throw imageDownloadFatalError(imageId, `Missing [${missing.map((m) => `'${m}'`).join(', ')}] fields from HTTP(S) basic auth config`);
  }
  return `Basic ${Buffer.from(`${basic.user}:${basic.password}`).toString('base64')}`;
}

/** requests' no_proxy rules: `*`, or host suffixes (with or without a leading dot, optional port). */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const [name, port] = entry.replace(/^\./, '').split(':') as [string, string | undefined];
    if (port && port !== (url.port || (url.protocol === 'https:' ? '443' : '80'))) continue;
    if (host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** The proxy URL for `url` under IPA's rules (image_info.proxies, then the environment), if any. */
export function proxyFor(url: URL, settings: HttpSettings): string | undefined {
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  if (bypassesProxy(url, settings.noProxy ?? process.env.NO_PROXY ?? process.env.no_proxy)) return undefined;
  return settings.proxies[scheme] ?? process.env[`${scheme}_proxy`] ?? process.env[`${scheme.toUpperCase()}_PROXY`];
}

/** Certificate checks per ipa-insecure and the CA file. */
export async function tlsFor(settings: HttpSettings): Promise<{ rejectUnauthorized: boolean; ca?: string }> {
  const ca = settings.cafile ? await readFile(settings.cafile, 'utf8') : undefined;
  return { rejectUnauthorized: !settings.insecure, ...(ca ? { ca } : {}) };
}

const dispatchers = new Map<string, Dispatcher>();

/**
 * A dispatcher for `url`: direct or through the scheme's proxy, TLS per ipa-insecure and the
 * CA file, IPA's timeouts, redirects followed as python-requests does. Cached per settings.
 */
export async function dispatcherFor(url: URL, settings: HttpSettings): Promise<Dispatcher> {
  const { Agent, ProxyAgent, interceptors } = await loadUndici();
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const proxy = proxyFor(url, settings);
  const key = JSON.stringify([proxy ?? null, scheme, settings.timeoutSeconds, settings.insecure, settings.cafile ?? null]);
  const cached = dispatchers.get(key);
  if (cached) return cached;
  const timeout = settings.timeoutSeconds * 1000;
  const tls = await tlsFor(settings);
  const common = { headersTimeout: timeout, bodyTimeout: timeout, connect: { timeout, ...tls }, pipelining: 0 };
  const base: Dispatcher = proxy
    ? new ProxyAgent({ ...common, uri: proxy, requestTls: tls, proxyTls: tls, proxyTunnel: scheme === 'https' })
    : new Agent(common);
  const dispatcher = base.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
  dispatchers.set(key, dispatcher);
  return dispatcher;
}

export const MAX_REDIRECTS = 5;

/** The headers every image request carries (no extra headers beyond auth, spec §9.4). */
export function requestHeaders(settings: HttpSettings, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(settings.authorization ? { authorization: settings.authorization } : {}), ...extra };
}

/** A short, single-line excerpt of a response body for error messages. */
export async function bodyExcerpt(body: { text(): Promise<string> }, max = 512): Promise<string> {
  try {
    const text = (await body.text()).replace(/\s+/g, ' ').trim();
    return text.length > max ? `${text.slice(0, max)}...` : text;
  } catch {
    return '';
  }
}
