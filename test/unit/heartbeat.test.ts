import { describe, expect, test } from 'vitest';
import { HeartbeatSchedule, Heartbeater } from '../../src/conductor/heartbeat.ts';
import { HeartbeatError } from '../../src/conductor/errors.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { memoryLogger } from '../helpers/logger.ts';

describe('heartbeat interval algorithm (spec §4.3, vectors §12.7)', () => {
  test('the §12.7 timeline with heartbeat_timeout = 20', () => {
    const s = new HeartbeatSchedule();
    const timeline: string[] = [];
    // [U for a heartbeat at that step, or undefined for "no heartbeat"], success/failure
    const outcomes = new Map<number, { ok: boolean; u: number }>([
      [0, { ok: true, u: 0.6 }],
      [12, { ok: true, u: 0.4 }],
      [20, { ok: false, u: 1.2 }],
      [26, { ok: true, u: 0.5 }],
    ]);
    let t = 0;
    while (timeline.length < 8) {
      const wait = s.waitTime(t);
      t += wait;
      if (!s.isDue(t)) {
        timeline.push(`t=${t} wait ${wait}: no heartbeat`);
        continue;
      }
      const o = outcomes.get(t);
      if (!o) throw new Error(`unexpected heartbeat at t=${t}`);
      if (o.ok) s.recordSuccess(t, 20, o.u);
      else s.recordFailure(t, o.u);
      timeline.push(`t=${t} wait ${wait}: heartbeat ${o.ok ? 'ok' : 'fails'}, interval ${Number(s.interval.toFixed(6))}, previous ${s.previous}`);
    }
    expect(timeline).toEqual([
      't=0 wait 0: heartbeat ok, interval 12, previous 0',
      't=5 wait 5: no heartbeat',
      't=10 wait 5: no heartbeat',
      't=12 wait 2: heartbeat ok, interval 8, previous 12',
      't=17 wait 5: no heartbeat',
      't=20 wait 3: heartbeat fails, interval 6, previous 20',
      't=25 wait 5: no heartbeat',
      't=26 wait 1: heartbeat ok, interval 10, previous 26',
    ]);
  });

  test.each([
    [0, 0, false, true],
    [100, 5, false, false],
    [100, 10, true, true],
    [100, 110, false, true],
    [100, 5, true, false],
  ])('interval %d, now %d, forced %s: due = %s', (interval, now, forced, due) => {
    const s = new HeartbeatSchedule();
    s.interval = interval;
    s.forced = forced;
    expect(s.isDue(now)).toBe(due);
  });

  test('success clears the forced flag; failure keeps it', () => {
    const s = new HeartbeatSchedule();
    s.forced = true;
    s.recordFailure(1, 1);
    expect(s.forced).toBe(true);
    s.recordSuccess(2, 10, 0.5);
    expect(s.forced).toBe(false);
  });

  test('a forced heartbeat waits only until minInterval has passed', () => {
    const s = new HeartbeatSchedule(1);
    s.recordSuccess(0, 300, 0.5); // next regular one in 150 s
    s.forced = true;
    expect(s.waitTime(0.25)).toBe(0.75);
    expect(s.isDue(1.01)).toBe(true);
  });
});

describe('Heartbeater loop', () => {
  test('sends at once, then after timeout x U(0.3,0.6); after an error after 5 x U(1,2); never stops on errors', async () => {
    // random() script: success -> U = 0.3 + 0.3 * 0.5; failure -> U = 1 + 0; success -> 0.45 again
    const clock = new FakeClock([0.5, 0, 0.5]);
    const { log } = memoryLogger();
    const sent: number[] = [];
    const errors: unknown[] = [];
    await new Promise<void>((resolve) => {
      const hb: Heartbeater = new Heartbeater({
        clock,
        log,
        heartbeatTimeout: () => 20,
        onError: (e) => errors.push(e),
        send: async () => {
          sent.push(clock.now());
          if (sent.length === 2) throw new HeartbeatError(500, 'Error 500: boom');
          if (sent.length === 4) void hb.stop().then(resolve);
        },
      });
      hb.start();
    });
    const gaps = sent.slice(1).map((t, i) => t - sent[i]!);
    // The loop sleeps 0.1 s past each computed wait, as IPA's does.
    expect(sent[0]).toBeCloseTo(0.1, 6);
    expect(gaps[0]).toBeGreaterThanOrEqual(9);
    expect(gaps[0]).toBeLessThan(9.2);
    expect(gaps[1]).toBeGreaterThanOrEqual(5);
    expect(gaps[1]).toBeLessThan(5.2);
    expect(gaps[2]).toBeGreaterThanOrEqual(9);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(HeartbeatError);
  });
});
