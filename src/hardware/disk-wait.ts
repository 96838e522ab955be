import { stat } from 'node:fs/promises';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';
import { listDisks } from './block-devices.ts';
import type { DiskGuard } from './disk-guard.ts';
import { pickRootDevice } from './root-device.ts';

export interface DiskWaitOptions {
  run: RunCommand;
  log: Logger;
  clock: Clock;
  diskGuard: DiskGuard;
  attempts: number;
  delaySeconds: number;
  signal?: AbortSignal | undefined;
}

/**
 * Waits at start-up until a suitable root disk shows up (spec §1.3 step 4): slow RAID
 * controllers and SAN paths present their disks late. Without an allowlist "suitable" is
 * IPA's default rule (a disk of at least 4 GiB); with one, it is every allowlisted device
 * being there, since those are exactly the disks the operator expects. Failure only logs.
 */
export async function waitForDisks(opts: DiskWaitOptions): Promise<boolean> {
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    const problem = await diskProblem(opts);
    if (problem === undefined) {
      if (attempt > 1) opts.log.info({ attempt }, 'disks found');
      return true;
    }
    if (attempt === opts.attempts) {
      opts.log.warn({ attempts: attempt, problem }, 'no suitable disk found; continuing without (deploys will fail until one appears)');
      return false;
    }
    opts.log.info({ attempt, problem, retryInSeconds: opts.delaySeconds }, 'waiting for disks');
    await opts.clock.sleep(opts.delaySeconds, opts.signal);
  }
  return opts.attempts <= 0;
}

async function diskProblem(opts: DiskWaitOptions): Promise<string | undefined> {
  const allow = opts.diskGuard.allowlist;
  if (allow.length > 0) {
    for (const device of allow) {
      const isBlock = await stat(device).then((s) => s.isBlockDevice(), () => false);
      if (!isBlock) return `allowlisted device ${device} is not there`;
    }
    return undefined;
  }
  try {
    pickRootDevice(await listDisks({ run: opts.run }), undefined);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
