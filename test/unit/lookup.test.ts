import { describe, expect, test } from 'vitest';
import type { IronicClient, LookupOutcome } from '../../src/conductor/client.ts';
import { LookupNodeError } from '../../src/conductor/errors.ts';
import { LockPause, lookupBackoff, lookupNode } from '../../src/conductor/lookup.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { memoryLogger } from '../helpers/logger.ts';

describe('lookup back-off (spec §3.3)', () => {
  test('full jitter in [interval, clamp(2^(n-1), interval, 60)]', () => {
    const lowest = () => 0;
    const highest = () => 0.999999;
    expect(lookupBackoff(1, 1, 60, highest)).toBeCloseTo(1);
    expect(lookupBackoff(2, 1, 60, highest)).toBeCloseTo(2, 4);
    expect(lookupBackoff(3, 1, 60, highest)).toBeCloseTo(4, 4);
    expect(lookupBackoff(4, 1, 60, highest)).toBeCloseTo(8, 4);
    expect(lookupBackoff(10, 1, 60, highest)).toBeCloseTo(60, 3);
    for (let n = 1; n < 12; n++) expect(lookupBackoff(n, 1, 60, lowest)).toBe(1);
    // a larger interval is the floor; a smaller cap wins over it
    expect(lookupBackoff(1, 5, 60, lowest)).toBe(5);
    expect(lookupBackoff(3, 0.2, 1, highest)).toBeCloseTo(1, 4);
  });

  test('409 lock pause: 5, 10, then 30 for the life of the process', () => {
    const p = new LockPause();
    expect([p.next(), p.next(), p.next(), p.next(), p.next()]).toEqual([5, 10, 30, 30, 30]);
  });
});

function scriptedClient(outcomes: (LookupOutcome | Error)[], seen: { macs: readonly string[]; uuid?: string | undefined }[]) {
  return {
    lookup: async (macs: readonly string[], uuid?: string) => {
      seen.push({ macs, uuid });
      const next = outcomes.shift();
      if (!next) throw new Error('script exhausted');
      if (next instanceof Error) throw next;
      return next;
    },
  } as unknown as IronicClient;
}

const found: LookupOutcome = {
  kind: 'found',
  node: { uuid: 'n-1' },
  settings: { heartbeatTimeout: 300 },
  token: 'x'.repeat(43),
};

describe('lookupNode retry loop', () => {
  test('connection errors, 404 and bad answers are retried with back-off; 409 adds the lock pause', async () => {
    const clock = new FakeClock([0, 0, 0, 0]);
    const seen: { macs: readonly string[] }[] = [];
    const client = scriptedClient(
      [new Error('ECONNREFUSED'), { kind: 'retry', detail: 'Error 404: Resource could not be found.' }, { kind: 'locked', detail: 'Error 409: locked' }, { kind: 'retry', detail: 'bad JSON' }, found],
      seen,
    );
    const result = await lookupNode(client, ['52:54:00:12:34:56'], {
      timeoutSeconds: 600, intervalSeconds: 1, maxIntervalSeconds: 60, lockPause: new LockPause(), clock, log: memoryLogger().log,
    });
    expect(result.node.uuid).toBe('n-1');
    expect(seen).toHaveLength(5);
    expect(seen[0]!.macs).toEqual(['52:54:00:12:34:56']);
    // random() = 0 gives the floor of each window; the 409 adds 5 s.
    expect(clock.sleeps).toEqual([1, 1, 6, 1]);
  });

  test('gives up with LookupNodeError once ipa-lookup-timeout has passed, naming the last error and the MACs', async () => {
    const clock = new FakeClock(Array(50).fill(0.999));
    const client = scriptedClient(Array.from({ length: 50 }, () => ({ kind: 'retry', detail: 'Error 404: Resource could not be found.' }) as LookupOutcome), []);
    const err = await lookupNode(client, ['aa:bb:cc:dd:ee:ff'], {
      timeoutSeconds: 20, intervalSeconds: 1, maxIntervalSeconds: 60, lockPause: new LockPause(), clock, log: memoryLogger().log,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LookupNodeError);
    expect((err as Error).message).toMatch(/Could not look up node info after \d+ attempts/);
    expect((err as Error).message).toContain('Error 404: Resource could not be found.');
    expect((err as Error).message).toContain('aa:bb:cc:dd:ee:ff');
    expect(clock.now()).toBeGreaterThanOrEqual(20);
    expect(clock.now()).toBeLessThan(21);
  });

  test('an abort signal ends the loop', async () => {
    const controller = new AbortController();
    controller.abort();
    const client = scriptedClient([found], []);
    await expect(
      lookupNode(client, [], {
        timeoutSeconds: 5, intervalSeconds: 1, maxIntervalSeconds: 60, lockPause: new LockPause(), clock: new FakeClock(), log: memoryLogger().log, signal: controller.signal,
      }),
    ).rejects.toThrow();
  });
});
