import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, test } from 'vitest';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { applyLayout } from '../../src/hardware/partition-apply.ts';
import { planLayout } from '../../src/hardware/partition-layout.ts';
import { runCommand } from '../../src/run.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root (loop devices)', isRoot);
const MiB = 1024 * 1024;

function table(dev: string): { label: string; partitions: Array<{ start: number; size: number; type: string; bootable?: boolean }> } {
  return (JSON.parse(execFileSync('sfdisk', ['--json', dev], { encoding: 'utf8' })) as { partitiontable: never }).partitiontable;
}

describe.skipIf(!canRun)('partition layouts written to loop devices (spec §9.6)', () => {
  const disks: LoopDevice[] = [];
  afterEach(async () => {
    for (const d of disks.splice(0)) await d.destroy();
  });

  test('uefi gpt: ESP, swap, config drive, root, registered with the kernel', async () => {
    const disk = await LoopDevice.create(1024 * MiB);
    disks.push(disk);
    const deps = { run: runCommand, diskGuard: new DiskGuard({ allowDevices: [disk.path] }) };
    const layout = planLayout({ diskBytes: 1024 * MiB, rootMb: 200, swapMb: 16, configDriveBytes: 2 * MiB, bootMode: 'uefi' });
    const paths = await applyLayout(deps, disk.path, layout);
    expect(paths).toEqual({ 'efi system partition': disk.partition(1), swap: disk.partition(2), configdrive: disk.partition(3), root: disk.partition(4) });
    const t = table(disk.path);
    expect(t.label).toBe('gpt');
    const linux = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
    expect(t.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 550 * 2048, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'],
      [551 * 2048, 16 * 2048, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F'],
      [567 * 2048, 2 * 2048, linux],
      [569 * 2048, 200 * 2048, linux],
    ]);
  });

  test('bios msdos: root bootable; a rewrite replaces an old gpt table', async () => {
    const disk = await LoopDevice.create(256 * MiB);
    disks.push(disk);
    const deps = { run: runCommand, diskGuard: new DiskGuard({ allowDevices: [disk.path] }) };
    await applyLayout(deps, disk.path, planLayout({ diskBytes: 256 * MiB, rootMb: 50, bootMode: 'uefi', efiSystemPartitionSizeMb: 10 }));
    const paths = await applyLayout(deps, disk.path, planLayout({ diskBytes: 256 * MiB, rootMb: 100, swapMb: 8, bootMode: 'bios' }));
    expect(paths).toEqual({ swap: disk.partition(1), root: disk.partition(2) });
    const t = table(disk.path);
    expect(t.label).toBe('dos');
    expect(t.partitions.map((p) => [p.start, p.size, p.type, p.bootable ?? false])).toEqual([[2048, 8 * 2048, '82', false], [9 * 2048, 100 * 2048, '83', true]]);
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', disk.path], { encoding: 'utf8' }).trim()).toBe('dos');
  });

  test('preserve_ephemeral keeps the table and the ephemeral data', async () => {
    const disk = await LoopDevice.create(256 * MiB);
    disks.push(disk);
    const deps = { run: runCommand, diskGuard: new DiskGuard({ allowDevices: [disk.path] }) };
    const layout = planLayout({ diskBytes: 256 * MiB, rootMb: 50, ephemeralMb: 20, bootMode: 'bios', diskLabel: 'gpt' });
    await applyLayout(deps, disk.path, layout);
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'ephemeral0', disk.partition(2)]);
    const before = execFileSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', disk.partition(2)], { encoding: 'utf8' }).trim();
    await applyLayout(deps, disk.path, layout, { preserveEphemeral: true });
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'UUID', disk.partition(2)], { encoding: 'utf8' }).trim()).toBe(before);
  });

  test('a device outside the allowlist is refused before anything is written', async () => {
    const disk = await LoopDevice.create(64 * MiB);
    disks.push(disk);
    const deps = { run: runCommand, diskGuard: new DiskGuard({ allowDevices: ['/dev/nonexistent-ina'] }) };
    await expect(applyLayout(deps, disk.path, planLayout({ diskBytes: 64 * MiB, rootMb: 10, bootMode: 'bios' }))).rejects.toThrow(/allowlist/);
    expect(() => execFileSync('sfdisk', ['--json', disk.path], { stdio: 'pipe' })).toThrow();
  });
});
