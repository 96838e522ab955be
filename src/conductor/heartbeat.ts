import { isAbort, uniform, type Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import { HeartbeatConflictError, HeartbeatError, IronicConnectionError } from './errors.ts';

/**
 * IPA's heartbeat timing (spec §4.3), as plain state so the §12.7 vectors can drive it.
 * `interval` is the time from one heartbeat to the next; success sets it to
 * heartbeat_timeout x U(0.3, 0.6), failure to 5 x U(1, 2). A forced heartbeat (an async
 * command finished) is due once more than `minInterval` seconds passed since the last one.
 */
export class HeartbeatSchedule {
  interval = 0;
  previous = 0;
  forced = false;
  /** The loop wakes at least this often to look at `forced` (IPA: 5 s). */
  readonly wakeCap: number;
  readonly minInterval: number;

  constructor(minInterval = 5, wakeCap = 5) {
    this.minInterval = minInterval;
    this.wakeCap = wakeCap;
  }

  waitTime(now: number): number {
    const elapsed = now - this.previous;
    const regular = Math.min(this.wakeCap, Math.max(0, this.interval - elapsed));
    return this.forced ? Math.min(regular, Math.max(0, this.minInterval - elapsed)) : regular;
  }

  isDue(now: number): boolean {
    const elapsed = now - this.previous;
    return elapsed >= this.interval || (this.forced && elapsed > this.minInterval);
  }

  /** `jitter` in [0.3, 0.6]. */
  recordSuccess(now: number, heartbeatTimeout: number, jitter: number): void {
    this.interval = heartbeatTimeout * jitter;
    this.forced = false;
    this.previous = now;
  }

  /** `jitter` in [1, 2]. */
  recordFailure(now: number, jitter: number): void {
    this.interval = 5 * jitter;
    this.previous = now;
  }
}

export interface HeartbeaterOptions {
  send(): Promise<void>;
  heartbeatTimeout(): number;
  clock: Clock;
  log: Logger;
  minInterval?: number;
  /** Told about every failed heartbeat, after it was logged. */
  onError?(err: unknown): void;
}

/**
 * The heartbeat loop. Errors never stop it (spec §4.2): they are logged and the next
 * attempt comes after the short error interval.
 */
export class Heartbeater {
  private readonly schedule: HeartbeatSchedule;
  private readonly opts: HeartbeaterOptions;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: AbortController = new AbortController();

  constructor(opts: HeartbeaterOptions) {
    this.opts = opts;
    this.schedule = new HeartbeatSchedule(opts.minInterval ?? 5);
  }

  start(): void {
    if (this.loop) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Ask for an early heartbeat: an asynchronous command finished (spec §4.3, §14.11). */
  force(): void {
    this.schedule.forced = true;
    this.wake.abort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    const { clock, log } = this.opts;
    while (!this.stopped) {
      const wait = this.schedule.waitTime(clock.now());
      try {
        await clock.sleep(wait + 0.1, this.wake.signal);
      } catch (err) {
        if (!isAbort(err)) throw err;
        this.wake = new AbortController();
      }
      if (this.stopped) break;
      const now = clock.now();
      if (!this.schedule.isDue(now)) continue;
      try {
        await this.opts.send();
        this.schedule.recordSuccess(now, this.opts.heartbeatTimeout(), uniform(clock, 0.3, 0.6));
        log.debug({ nextInSeconds: Number(this.schedule.interval.toFixed(1)) }, 'heartbeat sent');
      } catch (err) {
        this.schedule.recordFailure(now, uniform(clock, 1.0, 2.0));
        logHeartbeatError(log, err, this.schedule.interval);
        this.opts.onError?.(err);
      }
    }
  }
}

function logHeartbeatError(log: Logger, err: unknown, retryIn: number): void {
  const fields = { err: err instanceof Error ? err.message : String(err), retryInSeconds: Number(retryIn.toFixed(1)) };
  if (err instanceof HeartbeatConflictError) log.warn(fields, 'heartbeat conflict: the node is locked by the conductor');
  else if (err instanceof HeartbeatError) log.error(fields, 'Ironic rejected the heartbeat');
  else if (err instanceof IronicConnectionError) log.error(fields, 'heartbeat could not reach Ironic');
  else log.error(fields, 'heartbeat failed');
}
