import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { parseRaidConfig } from '../../src/hardware/raid/config.ts';
import { partitionMembers } from '../../src/hardware/raid/create.ts';
import { placeLogicalDisks } from '../../src/hardware/raid/plan.ts';
import { listDisks } from '../../src/hardware/block-devices.ts';
import { runCommand } from '../../src/run.ts';
import { runStep, stepContext } from '../helpers/erase-context.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';
import { MD_SUPERBLOCK_OFFSET, mdSuperblock12 } from '../helpers/md-superblock.ts';

const canRun = prerequisite('root (loop devices)', isRoot);
/** With an md driver, create_configuration would really assemble arrays: those tests are for a kernel without one. */
const noMd = !existsSync('/proc/mdstat') && !existsSync('/sys/module/md_mod');
const GiB = 2 ** 30;
const MiB = 2 ** 20;

let disks: LoopDevice[] = [];
let mountPoint: string | undefined;

afterEach(async () => {
  if (mountPoint) {
    try {
      sh('umount', [mountPoint]);
    } catch {
      // not mounted
    }
    rmSync(mountPoint, { recursive: true, force: true });
    mountPoint = undefined;
  }
  for (const d of disks) await d.destroy();
  disks = [];
});

/** Sparse loop devices, big enough for IPA's GiB-granular partitions. */
async function loops(n: number, size = 2 * GiB): Promise<LoopDevice[]> {
  for (let i = 0; i < n; i++) disks.push(await LoopDevice.create(size));
  return disks;
}

function sfdiskJson(path: string): { label: string; partitions: { node: string; start: number; size: number }[] } {
  return (JSON.parse(sh('sfdisk', ['--json', path])) as { partitiontable: { label: string; partitions: { node: string; start: number; size: number }[] } }).partitiontable;
}

/** A digest of the first and last MiB, where tables, superblocks and signatures live. */
function fingerprint(path: string, size: number): string {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(MiB);
  const h = createHash('sha256');
  readSync(fd, buf, 0, MiB, 0);
  h.update(buf);
  readSync(fd, buf, 0, MiB, size - MiB);
  h.update(buf);
  closeSync(fd);
  return h.digest('hex');
}

function writeSuperblock(path: string, sectors: number, offset = 0): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, mdSuperblock12(sectors), 0, undefined, offset + MD_SUPERBLOCK_OFFSET);
  closeSync(fd);
}

function hasSuperblock(path: string): boolean {
  try {
    sh('mdadm', ['--examine', path]);
    return true;
  } catch {
    return false;
  }
}

const target = (extra: Record<string, unknown> = {}) => ({
  logical_disks: [
    { controller: 'software', raid_level: '1', size_gb: 1, is_root_volume: true, ...extra },
    { controller: 'software', raid_level: '0', size_gb: 'MAX', volume_name: 'data' },
  ],
});

async function plan(devs: LoopDevice[]) {
  const { ctx } = stepContext(devs.map((d) => d.path));
  const found = (await listDisks({ run: runCommand }, { includeLoop: true })).filter((d) => devs.some((l) => l.path === d.name));
  return { ctx, ...placeLogicalDisks(found, parseRaidConfig(target()).logical_disks!) };
}

describe.skipIf(!canRun)('software RAID member partitions on loop devices', () => {
  test('UEFI: three disks get gpt, members start after the 551 MiB ESP gap; RAID-1 ends at 1 GiB, MAX runs to the end', async () => {
    const devs = await loops(3);
    const { ctx, disks: members, placed } = await plan(devs);
    const result = await partitionMembers(ctx, { disks: members, placed, bootMode: 'uefi', tableType: 'gpt' });
    expect(result.arrays.map((a) => a.members.map((m) => m.path))).toEqual([devs.map((d) => d.partition(1)), devs.map((d) => d.partition(2))]);
    for (const d of devs) {
      const table = sfdiskJson(d.path);
      expect(table.label).toBe('gpt');
      const [p1, p2] = table.partitions;
      expect(p1).toMatchObject({ node: d.partition(1), start: (551 * MiB) / 512, size: (GiB - 551 * MiB) / 512 });
      expect(p2!.start).toBe(GiB / 512);
      // -1: to the end, short of the backup GPT; optimal alignment ends it on the last whole MiB
      expect((p2!.start + p2!.size) * 512).toBe(2 * GiB - MiB);
      expect(existsSync(d.partition(1)) && existsSync(d.partition(2))).toBe(true);
    }
  });

  test('BIOS with msdos: the members start at the first usable sector sgdisk reports', async () => {
    const devs = await loops(2);
    const { ctx, disks: members, placed } = await plan(devs);
    await partitionMembers(ctx, { disks: members, placed, bootMode: 'bios', tableType: 'msdos' });
    for (const d of devs) {
      const table = sfdiskJson(d.path);
      expect(table.label).toBe('dos');
      expect(table.partitions[0]!.start).toBe(2048);
      expect(table.partitions[1]!.start).toBe(GiB / 512);
    }
  });

  test('BIOS with gpt: 8 MiB left for the BIOS boot partition grub needs', async () => {
    const devs = await loops(2);
    const { ctx, disks: members, placed } = await plan(devs);
    await partitionMembers(ctx, { disks: members, placed, bootMode: 'bios', tableType: 'gpt' });
    for (const d of devs) expect(sfdiskJson(d.path).partitions[0]!.start).toBe((8 * MiB) / 512);
  });
});

describe.skipIf(!canRun || !noMd)('create_configuration without an md driver in the kernel', () => {
  test('fails with a clear SoftwareRAIDError before anything is written: the disks are byte-identical', async () => {
    const devs = await loops(2);
    const before = devs.map((d) => fingerprint(d.path, 2 * GiB));
    const { ctx } = stepContext(devs.map((d) => d.path));
    const run = runStep(ctx, 'create_configuration', { uuid: 'n1', target_raid_config: target() });
    await expect(run).rejects.toMatchObject({ type: 'SoftwareRAIDError' });
    await expect(run).rejects.toThrow(/This kernel has no md \(software RAID\) driver: \/proc\/mdstat does not exist .* No disk was changed/);
    expect(devs.map((d) => fingerprint(d.path, 2 * GiB))).toEqual(before);
  });

  test('apply_configuration validates first: an invalid config deletes and writes nothing', async () => {
    const devs = await loops(2);
    writeSuperblock(devs[0]!.path, (2 * GiB) / 512);
    const { ctx } = stepContext(devs.map((d) => d.path));
    await expect(runStep(ctx, 'apply_configuration', { uuid: 'n1' }, { raid_config: { logical_disks: [{ controller: 'software', raid_level: '0', size_gb: 'MAX' }] } }, 'deploy'))
      .rejects.toThrow('Could not validate Software RAID config for n1: Software RAID Configuration requires RAID-1 for the first logical disk');
    expect(hasSuperblock(devs[0]!.path)).toBe(true);
  });

  test('a disk with partitions is refused, as IPA refuses it', async () => {
    const devs = await loops(2);
    sh('sfdisk', ['--quiet', devs[1]!.path], 'label: gpt\n,16M\n');
    const before = devs.map((d) => fingerprint(d.path, 2 * GiB));
    const { ctx } = stepContext(devs.map((d) => d.path));
    await expect(runStep(ctx, 'create_configuration', { uuid: 'n1', target_raid_config: target() })).rejects.toThrow(`Partitions detected on devices ${devs[1]!.path} during RAID config`);
    expect(devs.map((d) => fingerprint(d.path, 2 * GiB))).toEqual(before);
  });

  test('the disk guard refuses a member with a mounted filesystem; no disk is touched', async () => {
    const devs = await loops(2);
    sh('mkfs.ext4', ['-q', '-F', devs[1]!.path]);
    mountPoint = mkdtempSync(join(tmpdir(), 'ina-raid-mnt-'));
    sh('mount', [devs[1]!.path, mountPoint]);
    const before = fingerprint(devs[0]!.path, 2 * GiB);
    const { ctx } = stepContext(devs.map((d) => d.path));
    await expect(runStep(ctx, 'create_configuration', { uuid: 'n1', target_raid_config: target() })).rejects.toThrow(/Refusing to touch block device: .* has a mounted filesystem/);
    expect(fingerprint(devs[0]!.path, 2 * GiB)).toBe(before);
  });

  test('no target_raid_config: nothing to do, {} as IPA returns', async () => {
    const { ctx } = stepContext(['/dev/loop-none']);
    await expect(runStep(ctx, 'create_configuration', { uuid: 'n1' })).resolves.toEqual({});
  });
});

describe.skipIf(!canRun || !noMd)('delete_configuration without md arrays: stale member superblocks', () => {
  test('zeroes md superblocks where mdadm --examine finds them (disks and partitions), leaves everything else', async () => {
    const devs = await loops(3, 256 * MiB);
    for (const d of devs.slice(0, 2)) {
      sh('sfdisk', ['--quiet', d.path], 'label: gpt\n,64M\n,64M\n');
      d.scanPartitions();
      writeSuperblock(d.partition(1), (64 * MiB) / 512);
    }
    writeSuperblock(devs[2]!.path, (256 * MiB) / 512);
    const tables = devs.slice(0, 2).map((d) => JSON.stringify(sfdiskJson(d.path)));
    const untouched = devs.slice(0, 2).map((d) => fingerprint(d.partition(2), 64 * MiB));
    expect([...devs.slice(0, 2).map((d) => d.partition(1)), devs[2]!.path].map(hasSuperblock)).toEqual([true, true, true]);

    const { ctx } = stepContext(devs.map((d) => d.path));
    await expect(runStep(ctx, 'delete_configuration', { uuid: 'n1' })).resolves.toBeNull();

    expect([...devs.slice(0, 2).map((d) => d.partition(1)), devs[2]!.path].map(hasSuperblock)).toEqual([false, false, false]);
    // No array was running, so no holder disk: the partition tables stay, as in IPA.
    expect(devs.slice(0, 2).map((d) => JSON.stringify(sfdiskJson(d.path)))).toEqual(tables);
    expect(devs.slice(0, 2).map((d) => fingerprint(d.partition(2), 64 * MiB))).toEqual(untouched);
  });

  test('a device with a superblock that the guard refuses fails the step before any superblock is zeroed', async () => {
    const devs = await loops(2, 256 * MiB);
    writeSuperblock(devs[0]!.path, (256 * MiB) / 512);
    // msdos keeps the first MiB free but for the MBR: the disk's own superblock fits at 4 KiB.
    sh('sfdisk', ['--quiet', devs[1]!.path], 'label: dos\n,64M\n');
    devs[1]!.scanPartitions();
    sh('mkfs.ext4', ['-q', '-F', devs[1]!.partition(1)]);
    writeSuperblock(devs[1]!.path, (256 * MiB) / 512);
    mountPoint = mkdtempSync(join(tmpdir(), 'ina-raid-mnt-'));
    sh('mount', [devs[1]!.partition(1), mountPoint]);
    const { ctx } = stepContext(devs.map((d) => d.path));
    await expect(runStep(ctx, 'delete_configuration', { uuid: 'n1' })).rejects.toThrow(/Refusing to touch block device: .* has a mounted filesystem/);
    expect(devs.map((d) => hasSuperblock(d.path))).toEqual([true, true]);
  });
});
