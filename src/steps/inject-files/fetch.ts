import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { deploymentError } from '../../errors.ts';

/** Injected files are configuration, not images: anything bigger is refused rather than buffered. */
const MAX_BYTES = 64 * 1024 * 1024;
const ATTEMPTS = 3;

/**
 * Fetches a file's content (spec §8.4.1: URLs are fetched with retries, honouring
 * verify_ca: true, false, or a CA bundle path). 4xx is final; 5xx and connection errors
 * are retried (spec §14.3 gives the intended semantics).
 */
export async function fetchContent(url: string, opts: { verifyCa: boolean | string; timeoutSeconds: number; signal?: AbortSignal }): Promise<Buffer> {
  const ca = typeof opts.verifyCa === 'string' ? await readFile(opts.verifyCa, 'utf8') : undefined;
  const dispatcher = new Agent({ connect: { rejectUnauthorized: opts.verifyCa !== false, ...(ca ? { ca } : {}) } });
  let last = '';
  try {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const res = await request(url, {
          dispatcher,
          signal: opts.signal,
          headersTimeout: opts.timeoutSeconds * 1000,
          bodyTimeout: opts.timeoutSeconds * 1000,
        });
        if (res.statusCode >= 400) {
          await res.body.dump();
          last = `HTTP ${res.statusCode}`;
          if (res.statusCode < 500) break;
        } else {
          const chunks: Buffer[] = [];
          let size = 0;
          for await (const chunk of res.body) {
            size += (chunk as Buffer).length;
            if (size > MAX_BYTES) throw deploymentError(`inject_files: ${url} is larger than ${MAX_BYTES} bytes`);
            chunks.push(chunk as Buffer);
          }
          return Buffer.concat(chunks);
        }
      } catch (err) {
        if (opts.signal?.aborted || (err instanceof Error && err.name === 'DeploymentError')) throw err;
        last = err instanceof Error ? err.message : String(err);
      }
      if (attempt < ATTEMPTS) await sleep(1000, undefined, { signal: opts.signal });
    }
  } finally {
    await dispatcher.close();
  }
  throw deploymentError(`inject_files: cannot fetch ${url}: ${last}`);
}
