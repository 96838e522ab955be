import type { AgentContext } from '../agent-context.ts';
import type { Clock } from '../clock.ts';
import { IronicConnectionError } from '../conductor/errors.ts';
import { IronicHttp } from '../conductor/http.ts';
import { runCollectors } from './collectors.ts';

/** IPA's retry of the inspection POST (spec §5): 5 attempts, exponential x1.5, 5-30 s apart. */
export const INSPECTION_ATTEMPTS = 5;

/** Wait after the `attempt`-th failed POST (tenacity wait_exponential(multiplier=1.5, min=5, max=30)). */
export function inspectionBackoff(attempt: number): number {
  return Math.min(Math.max(1.5 * 2 ** (attempt - 1), 5), 30);
}

/** Where the data goes: the callback URLs, or `<api_url>/v1/continue_inspection` (spec §5). */
export function inspectionUrls(config: AgentContext['config']): string[] {
  if (config.inspectionCallbackUrl.length > 0) return [...config.inspectionCallbackUrl];
  if (config.inspectionCollectors.length > 0) return config.apiUrls.map((u) => `${u}/v1/continue_inspection`);
  return [];
}

export interface InspectOptions {
  clock: Clock;
  signal?: AbortSignal | undefined;
}

/**
 * Inspection at start-up (spec §1.3 step 7, §5): run the collectors, POST the data without
 * a microversion header, and return the node UUID Ironic answers with. Connection errors,
 * 5xx and 409 are retried; any other status >= 400 means "inspection failed, go on to
 * lookup". Collector failures travel in `error` and make the result undefined, as in IPA.
 * Never throws except on abort: start-up continues whatever happens here.
 */
export async function inspect(ctx: AgentContext, opts: InspectOptions): Promise<string | undefined> {
  const urls = inspectionUrls(ctx.config);
  if (urls.length === 0) return undefined;
  const names = ctx.config.inspectionCollectors.length > 0 ? ctx.config.inspectionCollectors : ['default', 'logs'];
  ctx.log.info({ collectors: names, urls }, 'inspection is enabled');
  const { data, failures } = await runCollectors({ ctx, clock: opts.clock, signal: opts.signal, names });
  data.error = failures.length > 0 ? failures.map((f) => `* ${f}`).join('\n') : null;

  const http = new IronicHttp({
    urls,
    timeoutSeconds: ctx.config.httpRequestTimeout,
    insecure: ctx.config.insecure,
    cafile: ctx.config.cafile,
    certfile: ctx.config.certfile,
    keyfile: ctx.config.keyfile,
    tlsMinVersion: ctx.config.tlsMinVersion,
    globalRequestId: ctx.config.globalRequestId,
    log: ctx.log,
  });
  try {
    for (let attempt = 1; ; attempt++) {
      let retryReason: string;
      try {
        const res = await http.call('POST', '', { body: data });
        if (res.status < 400) {
          const uuid = parseUuid(res.text);
          if (failures.length > 0) {
            ctx.log.error({ failures }, 'inspection data sent, but collectors failed: looking up without the node UUID');
            return undefined;
          }
          ctx.log.info({ url: res.url, node: uuid ?? null }, 'inspection finished successfully');
          return uuid;
        }
        if (res.status < 500 && res.status !== 409) {
          ctx.log.error({ url: res.url, status: res.status, answer: res.text.slice(0, 500) }, 'inspection failed, proceeding with lookup');
          return undefined;
        }
        retryReason = `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
      } catch (err) {
        if (!(err instanceof IronicConnectionError)) throw err;
        retryReason = err.message;
      }
      if (attempt >= INSPECTION_ATTEMPTS) {
        ctx.log.error({ attempts: attempt, problem: retryReason }, 'inspection failed, proceeding with lookup');
        return undefined;
      }
      const wait = inspectionBackoff(attempt);
      ctx.log.warn({ attempt, retryInSeconds: wait, problem: retryReason }, 'inspection callback failed, retrying');
      await opts.clock.sleep(wait, opts.signal);
    }
  } finally {
    http.close();
  }
}

function parseUuid(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { uuid?: unknown };
    return typeof body.uuid === 'string' ? body.uuid : undefined;
  } catch {
    return undefined;
  }
}
