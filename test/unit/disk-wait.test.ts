import { describe, expect, test } from 'vitest';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { waitForDisks } from '../../src/hardware/disk-wait.ts';
import { inspectionBackoff, inspectionUrls } from '../../src/inspection/callback.ts';
import { resolveConfig } from '../../src/config.ts';
import type { RunCommand } from '../../src/run.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { memoryLogger } from '../helpers/logger.ts';

const lsblk = (sizes: number[]) =>
  JSON.stringify({ blockdevices: sizes.map((size, i) => ({ kname: `sd${'abc'[i]}`, model: null, size, rota: false, type: 'disk', serial: null, wwn: null, 'log-sec': 512, 'phy-sec': 512, tran: null, pkname: null })) });

describe('waiting for disks at start-up (spec §1.3 step 4)', () => {
  test('retries ipa-disk-wait-attempts times, ipa-disk-wait-delay apart, until a disk of 4 GiB appears', async () => {
    const answers = [lsblk([]), lsblk([2 ** 30]), lsblk([2 ** 30, 8 * 2 ** 30])];
    const run: RunCommand = async () => answers.shift() ?? lsblk([]);
    const clock = new FakeClock();
    const ok = await waitForDisks({ run, log: memoryLogger().log, clock, diskGuard: new DiskGuard({ allowDevices: [] }), attempts: 10, delaySeconds: 3 });
    expect(ok).toBe(true);
    expect(clock.sleeps).toEqual([3, 3]);
  });

  test('gives up after the attempts with a warning only', async () => {
    const logger = memoryLogger();
    const clock = new FakeClock();
    const ok = await waitForDisks({ run: async () => lsblk([1024]), log: logger.log, clock, diskGuard: new DiskGuard({ allowDevices: [] }), attempts: 3, delaySeconds: 2 });
    expect(ok).toBe(false);
    expect(clock.sleeps).toEqual([2, 2]);
    expect(logger.lines().at(-1)).toMatchObject({ msg: 'no suitable disk found; continuing without (deploys will fail until one appears)', attempts: 3 });
  });

  test('with an allowlist, waits for the allowlisted devices themselves', async () => {
    const clock = new FakeClock();
    const run: RunCommand = async () => {
      throw new Error('lsblk must not be needed');
    };
    expect(await waitForDisks({ run, log: memoryLogger().log, clock, diskGuard: new DiskGuard({ allowDevices: ['/dev/null'] }), attempts: 2, delaySeconds: 1 })).toBe(false);
    expect(clock.sleeps).toEqual([1]);
    expect(await waitForDisks({ run, log: memoryLogger().log, clock: new FakeClock(), diskGuard: new DiskGuard({ allowDevices: ['/dev/null'] }), attempts: 0, delaySeconds: 1 })).toBe(true);
  });
});

describe('inspection URLs and retry timing (spec §5)', () => {
  test('callback URL, else <api_url>/v1/continue_inspection when collectors are set, else none', () => {
    const cfg = (params: Record<string, string>) => resolveConfig({ kernelParams: new Map(Object.entries(params)), flags: {} });
    expect(inspectionUrls(cfg({ 'ipa-inspection-callback-url': 'http://a/v1/continue,http://b/v1/continue' }))).toEqual(['http://a/v1/continue', 'http://b/v1/continue']);
    expect(inspectionUrls(cfg({ 'ipa-api-url': 'http://ironic:6385/', 'ipa-inspection-collectors': 'default' }))).toEqual(['http://ironic:6385/v1/continue_inspection']);
    expect(inspectionUrls(cfg({ 'ipa-api-url': 'http://ironic:6385' }))).toEqual([]);
  });
  test('tenacity wait_exponential(multiplier=1.5, min=5, max=30)', () => {
    expect([1, 2, 3, 4, 5, 6].map(inspectionBackoff)).toEqual([5, 5, 6, 12, 24, 30]);
  });
});
