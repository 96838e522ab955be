import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { makeDiskImage, type TestImage } from '../helpers/disk-images.ts';
import { readAt } from '../helpers/disk-layouts.ts';
import { sfdiskTable } from '../helpers/disk-inspect.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { freePort } from '../helpers/ports.ts';
import { mdMembers } from './harness/md-members.ts';
import { RamdiskVm, sparseDiskImages } from './harness/qemu.ts';
import { ramdiskCommands, type RamdiskCommand } from './harness/ramdisk-commands.ts';
import { canBuildRamdisk, sharedTestRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveMdadm = prerequisite('mdadm (apt-get install mdadm)', spawnSync('mdadm', ['--version']).status === 0);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const GUEST_IMAGES = { guestAddress: '10.0.2.101', guestPort: 8080 };

/** One ramdisk build for the scenarios of this file. */
const build = sharedTestRamdisk('ina-ramdisk-raid-image-', { bootc: false });
afterAll(() => build.remove());

/** IPA's example layout: a RAID-1 root, the rest of the disks as RAID-0. */
const TARGET_RAID_CONFIG = {
  logical_disks: [
    { size_gb: 2, raid_level: '1', controller: 'software', is_root_volume: true, volume_name: 'root' },
    { size_gb: 'MAX', raid_level: '0', controller: 'software', volume_name: 'data' },
  ],
};

/**
 * Software RAID where md exists: this machine's kernel has none, the ramdisk's kernel has
 * md_mod, raid0 and raid1. The ramdisk boots standalone (no Ironic) with two virtual disks,
 * and the clean steps are called on its API as Ironic's agent RAID interface calls them.
 * The arrays are then read from the host with mdadm --examine on the disk images.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveMdadm)('software RAID in the ramdisk, with the kernel md driver', () => {
  let dir: string;
  let image: BuildResult;
  let vm: RamdiskVm;
  let command: RamdiskCommand;
  const disks: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-'));
    image = await build.get();
    disks.push(...(await sparseDiskImages(dir, ['a', 'b'], 5 * GiB)));
    const port = await freePort();
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      disks,
      mac: '52:54:00:12:34:57',
      hostForwards: [{ hostPort: port, guestPort: 9999 }],
      // No ipa-api-url: IPA's standalone mode, the API without a token.
      append: '',
    });
    command = ramdiskCommands(`http://127.0.0.1:${port}`, vm, 300_000);
    await vm.waitForLine('agent API listening', 240);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function cleanStep(step: string) {
    const result = (await command('clean.execute_clean_step', {
      step: { interface: 'raid', step, args: {} },
      node: { uuid: 'raid-node', target_raid_config: TARGET_RAID_CONFIG, properties: {}, instance_info: {}, driver_internal_info: {} },
      ports: [],
    })) as { clean_result?: unknown } | null;
    return result?.clean_result;
  }

  async function disksInInventory(): Promise<{ name: string; size: number }[]> {
    const result = (await command('poll.get_hardware_info', {})) as { inventory?: { disks: { name: string; size: number }[] } } & { disks?: { name: string; size: number }[] };
    return result.inventory?.disks ?? result.disks ?? [];
  }

  test('create_configuration builds both arrays; delete_configuration removes them and their tables; create works again', async () => {
    expect(await cleanStep('create_configuration')).toEqual(TARGET_RAID_CONFIG);
    const md = (await disksInInventory()).filter((d) => d.name.startsWith('/dev/md'));
    expect(md.map((d) => d.name).sort()).toEqual(['/dev/md0', '/dev/md1']);
    // RAID-1 of 2 GiB; RAID-0 of what is left on both disks, less md metadata.
    expect(md.find((d) => d.name === '/dev/md0')!.size).toBeGreaterThan(1.99 * GiB);
    expect(md.find((d) => d.name === '/dev/md1')!.size).toBeGreaterThan(5 * GiB);

    expect(await cleanStep('delete_configuration')).toBeNull();
    expect((await disksInInventory()).filter((d) => d.name.startsWith('/dev/md'))).toEqual([]);
    // create refuses disks with partitions: a second create proves the tables went with the arrays.
    expect(await cleanStep('create_configuration')).toEqual(TARGET_RAID_CONFIG);

    await command('standby.sync', {});
    await vm.stop();

    // The host reads the md superblocks from the images (mdadm reads files without the driver).
    for (const disk of disks) {
      expect(sfdiskTable(disk).partitions).toHaveLength(2);
      const levels = mdMembers(disk).map((m) => ({ level: m.level, name: m.name, devices: m.raidDevices }));
      expect(levels).toEqual([{ level: 'raid1', name: 'root', devices: 2 }, { level: 'raid0', name: 'data', devices: 2 }]);
    }
  }, 600_000);
});

/**
 * IPA's skip list (`properties.skip_block_devices` with volume names) against live arrays:
 * delete_configuration keeps the named volume with its data and only wipes the array that
 * shares its disks; create_configuration then creates neither again. An image is written to
 * the root volume first, so the host can tell that it was kept.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveMdadm)('software RAID skip list in the ramdisk: a kept volume survives delete and create', () => {
  let dir: string;
  let vm: RamdiskVm;
  let command: RamdiskCommand;
  let images: ImageServer;
  let rootImage: TestImage;
  const disks: string[] = [];
  const node = { uuid: 'raid-skip-node', target_raid_config: TARGET_RAID_CONFIG, properties: { skip_block_devices: [{ volume_name: 'root' }] }, instance_info: {}, driver_internal_info: {} };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-skip-'));
    const image = await build.get();
    rootImage = await makeDiskImage(dir, 'root.img', { size: 32 * MiB, dataEvery: 1 });
    images = new ImageServer();
    await images.start();
    images.serve('/root.img', { path: rootImage.path });
    disks.push(...(await sparseDiskImages(dir, ['a', 'b'], 5 * GiB)));
    const port = await freePort();
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      disks,
      mac: '52:54:00:12:34:5c',
      hostForwards: [{ hostPort: port, guestPort: 9999 }],
      guestForwards: [{ ...GUEST_IMAGES, hostPort: Number(new URL(images.url).port) }],
      append: '',
    });
    command = ramdiskCommands(`http://127.0.0.1:${port}`, vm, 300_000);
    await vm.waitForLine('agent API listening', 240);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const raidStep = (step: string) => command('clean.execute_clean_step', { step: { interface: 'raid', step, args: {} }, node, ports: [] });

  test('root kept byte for byte, data wiped but not deleted (it shares the disks), nothing created again', async () => {
    await raidStep('create_configuration');
    // After create_configuration the agent deploys to the root volume (IPA's behaviour).
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/root.img`;
    await command('standby.prepare_image', { image_info: { id: 'root', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: rootImage.sha256 } });
    // The serial console runs behind the API: wait for the line, then count.
    await vm.waitForLine('root device selected: the root volume of the target RAID configuration', 60);

    await raidStep('delete_configuration');
    await raidStep('create_configuration');
    await vm.waitForLine('"decisions":{"/dev/md1":"wipe","/dev/md0":"keep"}', 60);
    await vm.waitForLine('logical disks kept by skip_block_devices are not created again', 60);
    expect(vm.count('"skipped":["root","data"]')).toBe(1);
    await command('standby.sync', {});
    await vm.stop();

    for (const disk of disks) {
      // Both arrays' superblocks are still there, and no others: nothing was deleted or made anew.
      expect(mdMembers(disk).map((m) => m.name)).toEqual(['root', 'data']);
    }
    // RAID-1: the root array's data as each member holds it is the root image, byte for byte
    // between its tables (the agent moves the backup GPT to the array's end, which changes
    // the primary header), and its GPT is still there.
    const body = readFileSync(rootImage.path).subarray(MiB, rootImage.size - MiB);
    for (const disk of disks) {
      const root = mdMembers(disk).find((m) => m.name === 'root')!;
      expect(readAt(disk, root.dataStart + MiB, body.length).equals(body), `root image on ${disk}`).toBe(true);
      expect(readAt(disk, root.dataStart + 512, 8).toString('latin1')).toBe('EFI PART');
    }
  }, 900_000);
});
