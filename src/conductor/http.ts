import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
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

/**
 * HTTP to the Ironic API as IPA does it (spec §2): JSON headers and the request id on every
 * call, a small connection pool, TLS from the agent's options. With several API URLs a
 * connection-type failure moves on to the next URL and the URL that answered goes to the
 * front; an HTTP error status is an answer and does not fail over.
 */
export class IronicHttp {
  private urls: string[];
  private dispatcher: Agent;
  private readonly opts: IronicHttpOptions;

  constructor(opts: IronicHttpOptions) {
    if (opts.urls.length === 0) throw new Error('IronicHttp needs at least one API URL');
    this.opts = opts;
    this.urls = [...opts.urls];
    this.dispatcher = this.makeDispatcher(opts.tlsMinVersion);
  }

  get apiUrls(): readonly string[] {
    return this.urls;
  }

  /** Ironic's lookup may raise the TLS floor (spec §3.2); later calls use it. */
  setTlsMinVersion(version: '1.2' | '1.3'): void {
    const old = this.dispatcher;
    this.dispatcher = this.makeDispatcher(version);
    void old.close();
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /**
   * One call, tried against each URL in turn until one answers. `path` starts with `/`;
   * `headers` adds to the JSON defaults. Throws IronicConnectionError when none answers.
   */
  async call(method: Dispatcher.HttpMethod, path: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<IronicResponse> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...opts.headers,
    };
    if (this.opts.globalRequestId) headers['x-openstack-request-id'] = this.opts.globalRequestId;
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const timeout = this.opts.timeoutSeconds * 1000;
    const failures: string[] = [];
    for (const base of [...this.urls]) {
      const url = base + path;
      try {
        const res = await request(url, {
          method, headers, body, dispatcher: this.dispatcher, headersTimeout: timeout, bodyTimeout: timeout,
        });
        const text = await res.body.text();
        this.promote(base);
        return { status: res.statusCode, text, url };
      } catch (err) {
        const reason = describeNetworkError(err);
        failures.push(`${url}: ${reason}`);
        this.opts.log.debug({ url, err: reason }, 'Ironic API not reachable at this URL');
      }
    }
    throw new IronicConnectionError(`cannot reach the Ironic API: ${failures.join('; ')}`);
  }

  private promote(base: string): void {
    if (this.urls[0] === base) return;
    this.urls = [base, ...this.urls.filter((u) => u !== base)];
  }

  private makeDispatcher(tlsMinVersion: '1.2' | '1.3'): Agent {
    const o = this.opts;
    return new Agent({
      connections: 2,
      connect: {
        timeout: o.timeoutSeconds * 1000,
        rejectUnauthorized: !o.insecure,
        minVersion: tlsMinVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
        ...(o.cafile ? { ca: readFileSync(o.cafile) } : {}),
        ...(o.certfile && o.keyfile ? { cert: readFileSync(o.certfile), key: readFileSync(o.keyfile) } : {}),
      },
    });
  }
}

export function describeNetworkError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${code ? `${code}: ` : ''}${err.message}${cause}`;
  }
  return String(err);
}
