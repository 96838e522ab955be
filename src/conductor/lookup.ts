import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { IronicClient } from './client.ts';
import { LookupNodeError } from './errors.ts';
import type { ParsedLookup } from './schemas.ts';

/**
 * Full-jitter exponential back-off after the `attempt`-th failure (1-based, spec §3.3):
 * uniform in [interval, clamp(2^(attempt-1), interval, max)].
 */
export function lookupBackoff(attempt: number, interval: number, max: number, random: () => number): number {
  const ceiling = Math.min(Math.max(2 ** (attempt - 1), interval), max);
  const low = Math.min(interval, ceiling);
  return low + (ceiling - low) * random();
}

/** The extra pause after a 409 "node locked": 5, 10, then 30 s for the life of the process (spec §3.3). */
export class LockPause {
  private readonly steps = [5, 10, 30];
  private index = 0;

  next(): number {
    const pause = this.steps[Math.min(this.index, this.steps.length - 1)]!;
    this.index += 1;
    return pause;
  }
}

export interface LookupLoopOptions {
  timeoutSeconds: number;
  intervalSeconds: number;
  maxIntervalSeconds: number;
  nodeUuid?: string | undefined;
  lockPause: LockPause;
  clock: Clock;
  log: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Looks the node up until Ironic answers with a usable node and config, or until
 * `timeoutSeconds` have passed since the first attempt (then LookupNodeError, spec §3.3).
 * Connection errors, 404 (unknown node or a state that does not allow lookup), 400 and bad
 * answers are all retried; the operator sees each reason in the log.
 */
export async function lookupNode(client: IronicClient, macs: readonly string[], opts: LookupLoopOptions): Promise<ParsedLookup> {
  const { clock, log } = opts;
  const started = clock.now();
  let lastProblem = 'no attempt made';
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted();
    let extraPause = 0;
    try {
      const outcome = await client.lookup(macs, opts.nodeUuid);
      if (outcome.kind === 'found') {
        log.info({ node: outcome.node.uuid, attempt }, 'lookup succeeded');
        return outcome;
      }
      lastProblem = outcome.detail;
      if (outcome.kind === 'locked') extraPause = opts.lockPause.next();
    } catch (err) {
      lastProblem = err instanceof Error ? err.message : String(err);
    }
    const elapsed = clock.now() - started;
    if (elapsed >= opts.timeoutSeconds) {
      throw new LookupNodeError(
        `Could not look up node info after ${attempt} attempts in ${elapsed.toFixed(1)}s (ipa-lookup-timeout=${opts.timeoutSeconds}). ` +
          `Last error: ${lastProblem}. Check that a port with one of ${macs.join(', ') || '(no MAC found)'} is enrolled and that the node is in a state that allows lookup.`,
      );
    }
    const wait = lookupBackoff(attempt, opts.intervalSeconds, opts.maxIntervalSeconds, () => clock.random()) + extraPause;
    log.warn({ attempt, retryInSeconds: Number(wait.toFixed(2)), problem: lastProblem }, 'lookup failed, retrying');
    await clock.sleep(Math.min(wait, Math.max(0, opts.timeoutSeconds - elapsed) + 0.001), opts.signal);
  }
}

