import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';

const canRun = prerequisite('root (loop devices)', isRoot);

describe.skipIf(!canRun)('the disk guard refuses devices that are in use (loop devices)', () => {
  let disk: LoopDevice;
  let mnt: string;

  beforeAll(async () => {
    disk = await LoopDevice.create(64 * 1024 * 1024);
    sh('sfdisk', ['--quiet', disk.path], 'label: gpt\n,16M\n,16M\n');
    disk.scanPartitions();
    sh('mkfs.ext4', ['-q', '-F', disk.partition(1)]);
    sh('mkswap', [disk.partition(2)]);
    mnt = mkdtempSync(join(tmpdir(), 'ina-mnt '));
  });

  afterAll(async () => {
    try {
      sh('umount', [mnt]);
    } catch {
      // not mounted
    }
    try {
      sh('swapoff', [disk.partition(2)]);
    } catch {
      // not active
    }
    rmSync(mnt, { recursive: true, force: true });
    await disk?.destroy();
  });

  test('an idle loop device passes and is returned resolved', async () => {
    const link = join(mkdtempSync(join(tmpdir(), 'ina-link-')), 'by-path-disk');
    symlinkSync(disk.path, link);
    expect(await new DiskGuard({ allowDevices: [] }).check(link)).toBe(disk.path);
  });

  test('not a block device, or missing: refused', async () => {
    const guard = new DiskGuard({ allowDevices: [] });
    await expect(guard.check('/dev/null')).rejects.toThrow('Refusing to touch block device: /dev/null: not a block device');
    await expect(guard.check('/dev/does-not-exist')).rejects.toThrow(/cannot open it \(ENOENT\)/);
  });

  test('with an allowlist, only listed devices pass (symlinks resolved on both sides)', async () => {
    await expect(new DiskGuard({ allowDevices: ['/dev/vdz'] }).check(disk.path)).rejects.toThrow(/not in the device allowlist \(\/dev\/vdz\)/);
    const link = join(mkdtempSync(join(tmpdir(), 'ina-link-')), 'allowed');
    symlinkSync(disk.path, link);
    expect(await new DiskGuard({ allowDevices: [link] }).check(disk.path)).toBe(disk.path);
  });

  test('a mounted filesystem on a partition refuses the whole disk and that partition', async () => {
    sh('mount', [disk.partition(1), mnt]);
    try {
      const guard = new DiskGuard({ allowDevices: [] });
      await expect(guard.check(disk.path)).rejects.toThrow(`has a mounted filesystem (${disk.partition(1)} on ${mnt})`);
      await expect(guard.check(disk.partition(1))).rejects.toThrow(/has a mounted filesystem/);
    } finally {
      sh('umount', [mnt]);
    }
    await expect(new DiskGuard({ allowDevices: [] }).check(disk.path)).resolves.toBe(disk.path);
  });

  test('active swap on a partition refuses the disk', async () => {
    sh('swapon', ['--priority', '-2', disk.partition(2)]);
    try {
      await expect(new DiskGuard({ allowDevices: [] }).check(disk.path)).rejects.toThrow(`is in use as swap (${disk.partition(2)})`);
    } finally {
      sh('swapoff', [disk.partition(2)]);
    }
  });

  test('holders (LVM, md, dm) refuse the disk: this kernel has no md/dm, so a recorded sysfs tree stands in', async () => {
    const sys = mkdtempSync(join(tmpdir(), 'ina-sys-'));
    const proc = mkdtempSync(join(tmpdir(), 'ina-proc-'));
    const k = basename(disk.path);
    mkdirSync(join(sys, 'class/block', k, `${k}p1`, 'holders'), { recursive: true });
    mkdirSync(join(sys, 'class/block', k, 'holders'), { recursive: true });
    writeFileSync(join(sys, 'class/block', k, 'dev'), '7:99\n');
    writeFileSync(join(sys, 'class/block', k, `${k}p1`, 'dev'), '259:3\n');
    writeFileSync(join(sys, 'class/block', k, `${k}p1`, 'partition'), '1\n');
    mkdirSync(join(sys, 'class/block', `${k}p1`, 'holders', 'dm-0'), { recursive: true });
    mkdirSync(join(proc, 'self'), { recursive: true });
    writeFileSync(join(proc, 'self/mountinfo'), '');
    writeFileSync(join(proc, 'swaps'), 'Filename\tType\tSize\tUsed\tPriority\n');
    const guard = new DiskGuard({ allowDevices: [], sysRoot: sys, procRoot: proc });
    await expect(guard.check(disk.path)).rejects.toThrow(`/dev/${k}p1 is held by /dev/dm-0`);
    // The RAID ESP path names the md array it writes beside; any other holder still refuses.
    await expect(guard.check(disk.path, { heldBy: ['/dev/dm-0'] })).resolves.toBe(disk.path);
    await expect(guard.check(disk.path, { heldBy: ['/dev/md0'] })).rejects.toThrow(`/dev/${k}p1 is held by /dev/dm-0`);
    rmSync(sys, { recursive: true });
    rmSync(proc, { recursive: true });
  });

  test('the machine\'s own root disk is refused', async () => {
    const rootSource = sh('findmnt', ['-n', '-o', 'SOURCE', '/']).trim();
    if (!rootSource.startsWith('/dev/')) return;
    await expect(new DiskGuard({ allowDevices: [] }).check(rootSource)).rejects.toThrow(/has a mounted filesystem/);
  });
});
