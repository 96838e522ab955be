import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { DeviceReport } from '../../src/hardware/erase/report.ts';
import { runCommand, type RunCommand } from '../../src/run.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { runStep, stepContext } from '../helpers/erase-context.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';

const MiB = 1024 * 1024;
import { hasPvcreate, layoutEverything, readAt, signatures, writeAt } from '../helpers/disk-layouts.ts';

const canRun = prerequisite('root (loop devices)', isRoot);
const node = (info: Record<string, unknown> = {}) => ({ uuid: 'node-1', properties: {}, instance_info: {}, driver_internal_info: info });

describe.skipIf(!canRun)('erase steps on loop devices', () => {
  const disks: LoopDevice[] = [];
  const loop = async (size = 64 * MiB, opts: { readOnly?: boolean } = {}) => {
    const d = await LoopDevice.create(size, opts);
    disks.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of disks.splice(0)) await d.destroy();
  });
  afterAll(async () => {
    for (const d of disks.splice(0)) await d.destroy();
  });

  test('erase_devices_metadata removes every signature: GPT (both copies), PMBR, filesystems, swap, LVM, md', async () => {
    const disk = await loop();
    layoutEverything(disk);
    const before = [1, 2, 3, 4, 5].flatMap((n) => signatures(disk.partition(n)));
    expect(before).toEqual(expect.arrayContaining(['TYPE=ext4', 'TYPE=vfat', 'TYPE=swap', 'TYPE=linux_raid_member']));
    if (hasPvcreate) expect(before).toContain('TYPE=LVM2_member');
    expect(signatures(disk.path)).toEqual(expect.arrayContaining(['PTTYPE=gpt', 'wipefs:gpt', 'wipefs:PMBR']));

    const { ctx, logs } = stepContext([disk.path]);
    const result = (await runStep(ctx, 'erase_devices_metadata', node())) as Record<string, DeviceReport>;

    expect(Object.keys(result).sort()).toEqual([disk.path, ...[1, 2, 3, 4, 5].map((n) => disk.partition(n))].sort());
    for (const device of [disk.path, ...[1, 2, 3, 4, 5].map((n) => disk.partition(n))]) {
      expect(signatures(device), device).toEqual([]);
      expect(result[device]?.method).toBe('metadata');
      expect(result[device]?.read_back).toMatchObject({ expected: 'zeroes', all_zero: true });
    }
    expect(result[disk.path]?.signatures_removed).toEqual(expect.arrayContaining(['gpt', 'PMBR']));
    expect(result[disk.partition(5)]?.signatures_removed).toEqual(['linux_raid_member']);
    // Both GPT copies: the header at LBA 1 and the backup at the last LBA read as zeroes.
    expect(readAt(disk.path, 0, 34 * 512).every((b) => b === 0)).toBe(true);
    expect(readAt(disk.path, 64 * MiB - 33 * 512, 33 * 512).every((b) => b === 0)).toBe(true);
    // Partitions first, then their disk (spec §11.2).
    const order = logs().filter((l) => l.msg === 'disk metadata destroyed').map((l) => l.device);
    expect(order.at(-1)).toBe(disk.path);
  });

  test('erase_devices_metadata is also a deploy step and wipes an MBR disk', async () => {
    const disk = await loop(32 * MiB);
    sh('sfdisk', ['--quiet', disk.path], 'label: dos\n,16M,83\n');
    disk.scanPartitions();
    sh('mkfs.ext4', ['-q', '-F', disk.partition(1)]);
    const { ctx } = stepContext([disk.path]);
    await runStep(ctx, 'erase_devices_metadata', node(), {}, 'deploy');
    expect(signatures(disk.path)).toEqual([]);
    expect(signatures(disk.partition(1))).toEqual([]);
  });

  test('erase_devices shreds loop devices in parallel (no ATA/NVMe here) and proves zeroes by reading back', async () => {
    const a = await loop(16 * MiB);
    const b = await loop(16 * MiB);
    for (const d of [a, b]) writeAt(d.path, 8 * MiB, Buffer.alloc(MiB, 0xab));
    const { ctx, logs } = stepContext([a.path, b.path]);
    const result = (await runStep(ctx, 'erase_devices', node({ disk_erasure_concurrency: 2 }))) as Record<string, DeviceReport>;
    for (const d of [a, b]) {
      expect(result[d.path]).toMatchObject({ method: 'shred', bytes_covered: 16 * MiB, size: 16 * MiB, read_back: { expected: 'zeroes', all_zero: true, samples: 18 } });
      expect(result[d.path]?.note).toBe('smartctl cannot query ATA security');
      expect(readAt(d.path, 8 * MiB, MiB).every((x) => x === 0)).toBe(true);
    }
    expect(logs().some((l) => l.msg === 'shred progress' && l.device === a.path)).toBe(true);
  });

  test('erase_devices without zeroize leaves shred\'s random pattern, reported as such', async () => {
    const d = await loop(8 * MiB);
    const { ctx } = stepContext([d.path]);
    const result = (await runStep(ctx, 'erase_devices', node({ agent_erase_devices_zeroize: false }))) as Record<string, DeviceReport>;
    expect(result[d.path]).toMatchObject({ method: 'shred', read_back: { expected: 'random', all_zero: false } });
  });

  test('only allowlisted disks are erased', async () => {
    const allowed = await loop(8 * MiB);
    const other = await loop(8 * MiB);
    for (const d of [allowed, other]) sh('sfdisk', ['--quiet', d.path], 'label: gpt\n,4M\n');
    const { ctx } = stepContext([allowed.path]);
    const result = (await runStep(ctx, 'erase_devices_metadata', node())) as Record<string, DeviceReport>;
    expect(Object.keys(result)).toEqual([allowed.path]);
    expect(signatures(allowed.path)).toEqual([]);
    expect(signatures(other.path)).toContain('PTTYPE=gpt');
  });

  test('a read-only device fails erase_devices as IPA does, or is skipped when the conductor allows it', async () => {
    const d = await loop(8 * MiB, { readOnly: true });
    const { ctx } = stepContext([d.path]);
    await expect(runStep(ctx, 'erase_devices', node())).rejects.toMatchObject({
      type: 'BlockDeviceEraseError',
      details: `Failed to invoke erase of device ${d.path} as the device is flagged read-only, and the conductor has not signaled this is a permitted case.`,
    });
    const skipped = (await runStep(ctx, 'erase_devices', node({ agent_erase_skip_read_only: true }))) as Record<string, DeviceReport>;
    expect(skipped[d.path]).toMatchObject({ method: 'skipped', bytes_covered: 0 });
    // The metadata erase skips read-only devices (spec §11.2).
    const meta = (await runStep(ctx, 'erase_devices_metadata', node())) as Record<string, DeviceReport>;
    expect(meta[d.path]?.method).toBe('skipped');
  });

  test('a shared cluster filesystem partition (GPFS) stops the step before any device is touched', async () => {
    const plain = await loop(16 * MiB);
    const gpfs = await loop(16 * MiB);
    sh('sfdisk', ['--quiet', plain.path], 'label: gpt\n,4M\n');
    // The partition is not registered with the kernel: the table on the disk is read.
    sh('sfdisk', ['--quiet', gpfs.path], 'label: gpt\n,4M,37AFFC90-EF7D-4E96-91C3-2D7AE055B174\n');
    const { ctx } = stepContext([plain.path, gpfs.path]);
    for (const step of ['erase_devices', 'erase_devices_metadata', 'erase_devices_express']) {
      await expect(runStep(ctx, step, node())).rejects.toMatchObject({
        type: 'ProtectedDeviceError',
        details: expect.stringContaining(`Protected IBM GPFS Partition located on device ${gpfs.path}`),
      });
      expect(signatures(plain.path)).toContain('PTTYPE=gpt');
      expect(signatures(gpfs.path)).toContain('PTTYPE=gpt');
    }
    const wiped = (await runStep(ctx, 'erase_devices_metadata', node({ wipe_special_filesystems: false }))) as Record<string, DeviceReport>;
    expect(Object.keys(wiped).sort()).toEqual([plain.path, gpfs.path].sort());
    expect(signatures(gpfs.path)).toEqual([]);
  });

  test('a VMFS (MBR type 0xfb) partition is protected too, unless ipa-guard-special-filesystems is off', async () => {
    const vmfs = await loop(16 * MiB);
    sh('sfdisk', ['--quiet', vmfs.path], 'label: dos\n,4M,fb\n');
    const { ctx } = stepContext([vmfs.path]);
    await expect(runStep(ctx, 'erase_devices_metadata', node())).rejects.toMatchObject({ details: expect.stringContaining('VMware VMFS Partition (MBR)') });
    const { ctx: off } = stepContext([vmfs.path], { flags: { 'guard-special-filesystems': false } });
    await expect(runStep(off, 'erase_devices_metadata', node())).resolves.toBeDefined();
  });

  test('a mounted partition refuses the whole step, nothing is touched', async () => {
    const d = await loop(32 * MiB);
    sh('sfdisk', ['--quiet', d.path], 'label: gpt\n,16M\n');
    d.scanPartitions();
    sh('mkfs.ext4', ['-q', '-F', d.partition(1)]);
    const mnt = sh('mktemp', ['-d']).trim();
    sh('mount', [d.partition(1), mnt]);
    try {
      const { ctx } = stepContext([d.path]);
      for (const step of ['erase_devices', 'erase_devices_metadata', 'erase_devices_express']) {
        await expect(runStep(ctx, step, node())).rejects.toMatchObject({ type: 'UnsafeDeviceError' });
      }
      expect(signatures(d.path)).toContain('PTTYPE=gpt');
    } finally {
      sh('umount', [mnt]);
      sh('rmdir', [mnt]);
    }
  });

  test('erase_devices_express on non-NVMe devices is the metadata wipe', async () => {
    const d = await loop(16 * MiB);
    sh('sfdisk', ['--quiet', d.path], 'label: gpt\n,4M\n');
    d.scanPartitions();
    sh('mkfs.vfat', [d.partition(1)]);
    const { ctx } = stepContext([d.path]);
    const result = (await runStep(ctx, 'erase_devices_express', node())) as Record<string, DeviceReport>;
    expect(result[d.path]?.method).toBe('metadata');
    expect(result[d.partition(1)]?.method).toBe('metadata');
    expect(signatures(d.path)).toEqual([]);
    expect(signatures(d.partition(1))).toEqual([]);
  });

  test('erase settings of the wrong type: InvalidCommandParamsError naming them, nothing touched', async () => {
    const d = await loop(8 * MiB);
    sh('sfdisk', ['--quiet', d.path], 'label: gpt\n,4M\n');
    const { ctx } = stepContext([d.path]);
    await expect(runStep(ctx, 'erase_devices', node({ agent_erase_devices_iterations: 'many' }))).rejects.toMatchObject({
      type: 'InvalidCommandParamsError',
      details: expect.stringContaining('driver_internal_info.agent_erase_devices_iterations'),
    });
    expect(signatures(d.path)).toContain('PTTYPE=gpt');
  });

  test('a missing shred is a clear error, not a crash', async () => {
    const d = await loop(8 * MiB);
    const noShred: RunCommand = (file, args, opts) => (file === 'shred' ? runCommand('/nonexistent/shred', args, opts) : runCommand(file, args, opts));
    const { ctx } = stepContext([d.path], { run: noShred });
    await expect(runStep(ctx, 'erase_devices', node())).rejects.toMatchObject({
      type: 'BlockDeviceEraseError',
      details: expect.stringMatching(new RegExp(`^Unable to erase block device ${d.path}: device is unsupported\\. .*not installed`)),
    });
  });

  test('a device that vanished between listing and erasing is refused', async () => {
    const d = await loop(8 * MiB);
    const path = d.path;
    const vanish: RunCommand = async (file, args, opts) => {
      const out = await runCommand(file, args, opts);
      if (file === 'lsblk') sh('losetup', ['-d', path]);
      return out;
    };
    const { ctx } = stepContext([path], { run: vanish });
    await expect(runStep(ctx, 'erase_devices', node())).rejects.toMatchObject({
      type: 'BlockDeviceEraseError',
      details: `${path} vanished between listing and erasing (the kernel reports no size for it)`,
    });
  });
});
