import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BOOTC, BUSYBOX, TOOLS } from '../../image-build/contents.ts';

const SRC = new URL('../../src/', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Every tool the agent starts by a literal name: run('x', ...), execa('x', ...), tool: 'x'. */
function toolsCalled(): Map<string, string> {
  const found = new Map<string, string>();
  const call = /(?:\brun|\bexeca|runCommand)\(\s*'([\w.+-]+)'|\btool: '([\w.+-]+)'/g;
  for (const file of sources(SRC)) {
    for (const m of readFileSync(file, 'utf8').matchAll(call)) found.set(m[1] ?? m[2]!, file.slice(SRC.length));
  }
  return found;
}

/** Run without a literal name: qemu-img through prlimit, mkfs.<ephemeral format> through a template, efibootmgr through its wrapper. */
const INDIRECT = ['qemu-img', 'mkfs.ext4', 'efibootmgr'];

/**
 * Tools the agent calls that the ramdisk deliberately lacks, with what the agent does
 * without them. Anything else the agent calls must be in the ramdisk, or the deploy fails
 * there although every test on this machine (where the tool is installed) passes.
 */
const NOT_IN_RAMDISK: Record<string, string> = {
  journalctl: 'no systemd in the ramdisk: the log bundle takes /var/log instead (spec §7.4)',
  getenforce: 'no SELinux in the ramdisk: bootc gets --disable-selinux',
  'mkfs.xfs': 'optional ephemeral filesystem: refused before any write when missing (checkMkfsTools)',
  'mkfs.btrfs': 'optional ephemeral filesystem: refused before any write when missing (checkMkfsTools)',
};

describe('the deploy ramdisk carries every tool the agent runs (image-build/contents.ts)', () => {
  test('each tool the agent calls is in TOOLS or BOOTC, or is a busybox applet, or is listed as absent with a reason', () => {
    const inImage = new Set([...TOOLS.paths, ...BOOTC.paths, ...BUSYBOX.paths].map((p) => basename(p)));
    // The ramdisk installs busybox's applets for whatever the real tools do not cover.
    const applets = new Set(execFileSync('busybox', ['--list'], { encoding: 'utf8' }).split('\n'));
    const called = toolsCalled();
    for (const t of INDIRECT) called.set(t, '(indirect)');
    const missing = [...called].filter(([tool]) => !inImage.has(tool) && !applets.has(tool) && !(tool in NOT_IN_RAMDISK));
    expect(missing.map(([tool, file]) => `${tool} (called in ${file})`)).toEqual([]);
    expect(called.size).toBeGreaterThan(30);
  });
});
