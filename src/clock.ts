import { setTimeout as delay } from 'node:timers/promises';

/** Time and randomness, injected so that retry and heartbeat timing can be tested exactly. */
export interface Clock {
  /** Monotonic seconds. */
  now(): number;
  /** Resolves after `seconds`, or rejects with an AbortError when `signal` fires. */
  sleep(seconds: number, signal?: AbortSignal): Promise<void>;
  /** Uniform in [0, 1). */
  random(): number;
}

export const realClock: Clock = {
  now: () => performance.now() / 1000,
  sleep: async (seconds, signal) => {
    await delay(Math.max(0, seconds * 1000), undefined, signal ? { signal } : undefined);
  },
  random: Math.random,
};

export function uniform(clock: Clock, low: number, high: number): number {
  return low + (high - low) * clock.random();
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
