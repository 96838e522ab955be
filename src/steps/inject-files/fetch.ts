import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError, deploymentError } from '../../errors.ts';

/** Injected files are configuration, not images: anything bigger is refused rather than buffered. */
const MAX_BYTES = 64 * 1024 * 1024;
const ATTEMPTS = 3;
/** Redirects followed per fetch, as IPA's requests.get follows them (a redirect page is not the file). */
const MAX_REDIRECTS = 10;

interface GetOptions {
  ca: string | undefined;
  rejectUnauthorized: boolean;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

/** One GET with node:http(s) (as the conductor client: undici would add ~80 ms to the agent's start). */
function get(url: string, opts: GetOptions): Promise<{ status: number; body: Buffer; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const https = url.toLowerCase().startsWith('https:');
    const req = (https ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', signal: opts.signal, timeout: opts.timeoutMs, ...(https ? { ca: opts.ca, rejectUnauthorized: opts.rejectUnauthorized } : {}) },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BYTES) {
            res.destroy();
            reject(deploymentError(`inject_files: ${url} is larger than ${MAX_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), location: res.headers.location }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET, following 301/302/303/307/308 to their Location; a 3xx without one is returned as it is. */
async function followRedirects(url: string, opts: GetOptions): Promise<{ status: number; body: Buffer }> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await get(current, opts);
    if (![301, 302, 303, 307, 308].includes(res.status) || res.location === undefined) return res;
    if (hop >= MAX_REDIRECTS) throw deploymentError(`inject_files: ${url}: more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(res.location, current);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw deploymentError(`inject_files: ${url} redirects to ${next.protocol} URL, not http(s)`);
    current = next.href;
  }
}

/**
 * Fetches a file's content (spec §8.4.1: URLs are fetched with retries, honouring
 * verify_ca: true, false, or a CA bundle path). 4xx is final; 5xx and connection errors
 * are retried (spec §14.3 gives the intended semantics).
 */
export async function fetchContent(url: string, opts: { verifyCa: boolean | string; timeoutSeconds: number; signal?: AbortSignal }): Promise<Buffer> {
  const ca = typeof opts.verifyCa === 'string' ? await readFile(opts.verifyCa, 'utf8') : undefined;
  const getOpts: GetOptions = { ca, rejectUnauthorized: opts.verifyCa !== false, timeoutMs: opts.timeoutSeconds * 1000, signal: opts.signal };
  let last = '';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      const res = await followRedirects(url, getOpts);
      if (res.status < 300) return res.body;
      last = `HTTP ${res.status}`;
      if (res.status < 500) break;
    } catch (err) {
      if (opts.signal?.aborted || err instanceof AgentError) throw err;
      last = err instanceof Error ? err.message : String(err);
    }
    if (attempt < ATTEMPTS) await sleep(1000, undefined, { signal: opts.signal });
  }
  throw deploymentError(`inject_files: cannot fetch ${url}: ${last}`);
}
