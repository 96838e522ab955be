import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { PowerControl, type PowerAction } from '../../src/hardware/power.ts';
import { memoryLogger } from '../helpers/logger.ts';

/**
 * Power actions must never run on the test machine, so these tests give PowerControl a
 * recorded /proc and /sys and a command runner that only records: the decisions are real,
 * the machine is untouched.
 */
function setup(rootLine: string) {
  const proc = mkdtempSync(join(tmpdir(), 'ina-proc-'));
  const sys = mkdtempSync(join(tmpdir(), 'ina-sys-'));
  mkdirSync(join(proc, 'self'));
  mkdirSync(join(proc, 'sys/vm'), { recursive: true });
  writeFileSync(join(proc, 'self/mountinfo'), `${rootLine}\n22 1 0:21 / /proc rw,nosuid - proc proc rw\n`);
  for (const nic of ['eth0', 'eth1', 'lo']) mkdirSync(join(sys, 'class/net', nic), { recursive: true });
  const ran: string[] = [];
  const events: string[] = [];
  const run = async (file: string, args: readonly string[]) => {
    ran.push([file, ...args].join(' '));
    return '';
  };
  const hooks = {
    goDown: async (a: PowerAction | 'stop') => void events.push(`down:${a}`),
    simulate: (a: PowerAction, d: number) => void events.push(`simulate:${a}:${d}`),
  };
  return { proc, sys, ran, events, run, hooks };
}

const RAMDISK_ROOT = '1 0 0:2 / / rw - rootfs rootfs rw';
const DISK_ROOT = '25 1 254:0 / / rw,relatime - ext4 /dev/vda rw';

describe('power actions (spec §7.2, §7.6)', () => {
  test.each(['power_off', 'reboot', 'lockdown'] as const)('%s refuses on a machine whose root is a block device', async (action) => {
    const s = setup(DISK_ROOT);
    const power = new PowerControl({ simulate: false, log: memoryLogger().log, run: s.run, hooks: s.hooks, procRoot: s.proc, sysRoot: s.sys });
    await expect(power.request(action)).rejects.toThrow(/refusing to .* this machine: it does not run from a ramdisk \(root filesystem ext4 on \/dev\/vda\)/);
    await delay(300);
    expect(s.ran).toEqual([]);
    expect(s.events).toEqual([]);
  });

  test('in a ramdisk: sync, drop caches, go down after the answer, then poweroff', async () => {
    const s = setup(RAMDISK_ROOT);
    const power = new PowerControl({ simulate: false, log: memoryLogger().log, run: s.run, hooks: s.hooks, procRoot: s.proc, sysRoot: s.sys });
    await power.request('power_off');
    expect(s.ran).toEqual(['sync']);
    expect(readFileSync(join(s.proc, 'sys/vm/drop_caches'), 'utf8')).toBe('3');
    expect(s.events).toEqual([]);
    await delay(400);
    expect(s.events).toEqual(['down:power_off']);
    expect(s.ran).toEqual(['sync', 'poweroff']);
  });

  test('reboot falls back to sysrq when reboot is ignored', async () => {
    const s = setup(RAMDISK_ROOT);
    const run = async (file: string, args: readonly string[]) => {
      s.ran.push([file, ...args].join(' '));
      return file === 'reboot' ? 'Ignoring request' : '';
    };
    const power = new PowerControl({ simulate: false, log: memoryLogger().log, run, hooks: s.hooks, procRoot: s.proc, sysRoot: s.sys });
    await power.request('reboot');
    await delay(400);
    expect(s.ran).toEqual(['sync', 'reboot']);
    expect(readFileSync(join(s.proc, 'sysrq-trigger'), 'utf8')).toBe('b');
  });

  test('lockdown in a ramdisk: every NIC but lo goes down', async () => {
    const s = setup(RAMDISK_ROOT);
    const power = new PowerControl({ simulate: false, log: memoryLogger().log, run: s.run, hooks: s.hooks, procRoot: s.proc, sysRoot: s.sys });
    await power.request('lockdown');
    await delay(400);
    expect(s.events).toEqual(['down:lockdown']);
    expect(s.ran).toEqual(['sync', 'ip link set eth0 down', 'ip link set eth1 down']);
  });

  test('--simulate-power: nothing runs, the agent is told to go down and boot again', async () => {
    const s = setup(DISK_ROOT);
    const { log, lines } = memoryLogger();
    const power = new PowerControl({ simulate: true, log, run: s.run, hooks: s.hooks, procRoot: s.proc, sysRoot: s.sys, simulatedBootDelaySeconds: 2 });
    await power.request('lockdown');
    expect(s.ran).toEqual([]);
    expect(s.events).toEqual(['simulate:lockdown:2']);
    expect(lines().find((l) => l.action === 'lockdown')?.links).toEqual(['eth0', 'eth1']);
  });
});
