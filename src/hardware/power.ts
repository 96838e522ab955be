import { readFile, readdir, writeFile } from 'node:fs/promises';
import { systemRebootError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';

export type PowerAction = 'power_off' | 'reboot' | 'lockdown';

export interface PowerHooks {
  /** Stop serving the API and heartbeating, as the machine going down would. */
  goDown(action: PowerAction): Promise<void>;
  /**
   * Simulation only: go quiet now, go down after `delaySeconds` (the command's answer goes
   * out first), then come back as a freshly booted ramdisk: no token, no command log, lookup.
   */
  simulate(action: PowerAction, delaySeconds: number): void;
}

export interface PowerControlOptions {
  simulate: boolean;
  log: Logger;
  run: RunCommand;
  hooks: PowerHooks;
  /** Simulated boot time between going down and booting again. */
  simulatedBootDelaySeconds?: number;
  procRoot?: string;
  sysRoot?: string;
}

const SYSRQ: Record<Exclude<PowerAction, 'lockdown'>, string> = { power_off: 'o', reboot: 'b' };
const COMMAND: Record<Exclude<PowerAction, 'lockdown'>, string> = { power_off: 'poweroff', reboot: 'reboot' };

/**
 * Power actions of standby.power_off, standby.run_image and system.lockdown (spec §7.2, §7.6).
 * They are real only inside a ramdisk: on a machine whose root filesystem is a block device
 * they refuse, so a test run can never power off, reboot or cut off the machine it runs on.
 * With --simulate-power they are logged, the agent goes quiet, and then boots again as a
 * fresh ramdisk would, so a real Ironic can drive many deploys in one run.
 */
export class PowerControl {
  private readonly opts: PowerControlOptions;

  constructor(opts: PowerControlOptions) {
    this.opts = opts;
  }

  get simulated(): boolean {
    return this.opts.simulate;
  }

  /** `sync`: flush the page cache to the disks (standby.sync). */
  async sync(): Promise<void> {
    await this.opts.run('sync', []);
  }

  /**
   * Called at the end of the command that asked for `action`. The machine goes down shortly
   * after, once the command's answer is out (IPA stops serving after the response).
   */
  async request(action: PowerAction): Promise<void> {
    const { log } = this.opts;
    if (this.opts.simulate) {
      const links = action === 'lockdown' ? await this.networkInterfaces() : [];
      log.warn({ action, links }, `simulated ${action}: not touching the machine; the agent goes down and boots again`);
      this.opts.hooks.simulate(action, this.opts.simulatedBootDelaySeconds ?? 1);
      return;
    }
    await this.assertRamdisk(action);
    await this.fullSync();
    this.later(async () => {
      await this.opts.hooks.goDown(action);
      if (action === 'lockdown') await this.linksDown();
      else await this.powerAction(action);
    });
  }

  /** The answer to the command goes out before the machine goes down. */
  private later(task: () => Promise<void>): void {
    setTimeout(() => {
      task().catch((err: unknown) => this.opts.log.error({ err: String(err) }, 'power action failed'));
    }, 200).unref();
  }

  /** IPA's full_sync before power actions: sync and drop caches; failures are warnings (spec §7.2). */
  private async fullSync(): Promise<void> {
    try {
      await this.opts.run('sync', []);
      await writeFile(`${this.opts.procRoot ?? '/proc'}/sys/vm/drop_caches`, '3');
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, 'syncing before the power action failed');
    }
  }

  private async powerAction(action: Exclude<PowerAction, 'lockdown'>): Promise<void> {
    try {
      const out = await this.opts.run(COMMAND[action], []);
      if (!/ignoring request/i.test(out)) return;
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, `${COMMAND[action]} failed, using sysrq`);
    }
    await writeFile(`${this.opts.procRoot ?? '/proc'}/sysrq-trigger`, SYSRQ[action]);
  }

  /** Lockdown: every NIC down, and the process stays alive so nothing restarts it (spec §1.3 step 12). */
  private async linksDown(): Promise<void> {
    for (const link of await this.networkInterfaces()) {
      await this.opts.run('ip', ['link', 'set', link, 'down']).catch((err: unknown) => {
        this.opts.log.error({ link, err: String(err) }, 'cannot bring the link down');
      });
    }
    this.opts.log.warn('lockdown complete: network down, API and heartbeat stopped');
  }

  private async networkInterfaces(): Promise<string[]> {
    const names = await readdir(`${this.opts.sysRoot ?? '/sys'}/class/net`).catch(() => [] as string[]);
    return names.filter((n) => n !== 'lo').sort();
  }

  /** Real power actions only when / is the ramdisk's rootfs, tmpfs or ramfs. */
  private async assertRamdisk(action: PowerAction): Promise<void> {
    const mountinfo = await readFile(`${this.opts.procRoot ?? '/proc'}/self/mountinfo`, 'utf8').catch(() => '');
    const root = mountinfo
      .split('\n')
      .map((line) => line.split(' '))
      .find((f) => f[4] === '/');
    const dash = root ? root.indexOf('-') : -1;
    const fstype = root && dash > 0 ? root[dash + 1] : undefined;
    const source = root && dash > 0 ? root[dash + 2] : undefined;
    if (fstype === 'rootfs' || fstype === 'tmpfs' || fstype === 'ramfs') return;
    throw systemRebootError(
      `refusing to ${action.replace('_', ' ')} this machine: it does not run from a ramdisk ` +
        `(root filesystem ${fstype ?? 'unknown'} on ${source ?? 'unknown'}). Start the agent with --simulate-power for tests.`,
    );
  }
}
