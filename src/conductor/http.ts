import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from '../log.ts';
import { IronicConnectionError } from './errors.ts';

export interface IronicHttpOptions {
  urls: readonly string[];
  timeoutSeconds: number;
  insecure: boolean;
  cafile?: string | undefined;
  certfile?: string | undefined;
  keyfile?: string | undefined;
  tlsMinVersion: '1.2' | '1.3';
  globalRequestId?: string | undefined;
  log: Logger;
}

export interface IronicResponse {
  status: number;
  text: string;
  url: string;
}

export interface TlsClientOptions {
  insecure: boolean;
  tlsMinVersion: '1.2' | '1.3';
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/** Bodies from Ironic are small JSON documents; anything bigger is not an Ironic answer. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * One HTTP(S) request with a JSON body, answered with status and text. Uses node:http(s)
 * rather than undici: these calls are few and small, and undici's import alone costs about
 * 80 ms of the agent's start-up (bench/startup.ts). Connect and idle timeouts are both
 * `timeoutSeconds`. Network and TLS failures reject; HTTP statuses resolve.
 */
export function sendRequest(
  url: string,
  opts: { method: string; headers: Record<string, string>; body?: string | undefined; timeoutSeconds: number; agent: HttpAgent },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = { ...opts.headers, ...(opts.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(opts.body)) }) };
    const req = send(target, { method: opts.method, headers, agent: opts.agent, timeout: opts.timeoutSeconds * 1000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutSeconds}s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function makeAgent(protocol: 'http:' | 'https:', tls: TlsClientOptions): HttpAgent {
  if (protocol === 'http:') return new HttpAgent({ keepAlive: true, maxSockets: 2 });
  return new HttpsAgent({
    keepAlive: true,
    maxSockets: 2,
    rejectUnauthorized: !tls.insecure,
    minVersion: tls.tlsMinVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  });
}

/**
 * HTTP to the Ironic API as IPA does it (spec §2): JSON headers and the request id on every
 * call, a pool of two connections, TLS from the agent's options. With several API URLs a
 * connection-type failure moves on to the next URL and the URL that answered goes to the
 * front; an HTTP error status is an answer and does not fail over.
 */
export class IronicHttp {
  private urls: string[];
  private readonly opts: IronicHttpOptions;
  private tls: TlsClientOptions;
  private agents = new Map<string, HttpAgent>();

  constructor(opts: IronicHttpOptions) {
    if (opts.urls.length === 0) throw new Error('IronicHttp needs at least one API URL');
    this.opts = opts;
    this.urls = [...opts.urls];
    this.tls = {
      insecure: opts.insecure,
      tlsMinVersion: opts.tlsMinVersion,
      ca: opts.cafile ? readFileSync(opts.cafile) : undefined,
      cert: opts.certfile ? readFileSync(opts.certfile) : undefined,
      key: opts.keyfile ? readFileSync(opts.keyfile) : undefined,
    };
  }

  get apiUrls(): readonly string[] {
    return this.urls;
  }

  /** Ironic's lookup may raise the TLS floor (spec §3.2); later calls use it. */
  setTlsMinVersion(version: '1.2' | '1.3'): void {
    this.tls = { ...this.tls, tlsMinVersion: version };
    this.close();
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /**
   * One call, tried against each URL in turn until one answers. `path` starts with `/`;
   * `headers` adds to the JSON defaults. Throws IronicConnectionError when none answers.
   */
  async call(method: string, path: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<IronicResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json', ...opts.headers };
    if (this.opts.globalRequestId) headers['x-openstack-request-id'] = this.opts.globalRequestId;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const failures: string[] = [];
    for (const base of [...this.urls]) {
      const url = base + path;
      try {
        const res = await sendRequest(url, { method, headers, body, timeoutSeconds: this.opts.timeoutSeconds, agent: this.agentFor(url) });
        this.promote(base);
        return { ...res, url };
      } catch (err) {
        const reason = describeNetworkError(err);
        failures.push(`${url}: ${reason}`);
        this.opts.log.debug({ url, err: reason }, 'Ironic API not reachable at this URL');
      }
    }
    throw new IronicConnectionError(`cannot reach the Ironic API: ${failures.join('; ')}`);
  }

  private agentFor(url: string): HttpAgent {
    const protocol = url.startsWith('https:') ? 'https:' : 'http:';
    let agent = this.agents.get(protocol);
    if (!agent) {
      agent = makeAgent(protocol, this.tls);
      this.agents.set(protocol, agent);
    }
    return agent;
  }

  private promote(base: string): void {
    if (this.urls[0] === base) return;
    this.urls = [base, ...this.urls.filter((u) => u !== base)];
  }
}

export function describeNetworkError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${code && !err.message.startsWith(code) ? `${code}: ` : ''}${err.message}${cause}`;
  }
  return String(err);
}
