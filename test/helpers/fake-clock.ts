import type { Clock } from '../../src/clock.ts';

/** A clock where sleeping advances time at once, and random() returns a script. */
export class FakeClock implements Clock {
  t = 0;
  readonly sleeps: number[] = [];
  private randoms: number[];

  constructor(randoms: number[] = []) {
    this.randoms = [...randoms];
  }

  now(): number {
    return this.t;
  }

  async sleep(seconds: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.sleeps.push(seconds);
    this.t += seconds;
  }

  random(): number {
    return this.randoms.length > 0 ? this.randoms.shift()! : 0.5;
  }
}
