import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { BIOS_BOOT_TYPE } from '../../src/bootloader/raid-bios-boot.ts';
import { installBusybox, installGrubDoubles } from '../helpers/bootloader-disks.ts';
import { digests, type TestImage } from '../helpers/disk-images.ts';
import { readAt } from '../helpers/disk-layouts.ts';
import { sfdiskTable } from '../helpers/disk-inspect.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { freePort } from '../helpers/ports.ts';
import { readOnlyLoop, rootArrayData } from './harness/md-members.ts';
import { RamdiskVm, sparseDiskImages } from './harness/qemu.ts';
import { ramdiskCommands, type RamdiskCommand } from './harness/ramdisk-commands.ts';
import { buildTestRamdisk, canBuildRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveTools = prerequisite('sgdisk, mkfs.ext4, debugfs, mdadm, busybox', ['sgdisk', 'mkfs.ext4', 'debugfs', 'mdadm', 'busybox'].every((t) => spawnSync('which', [t]).status === 0));

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const GUEST_IMAGES = { guestAddress: '10.0.2.101', guestPort: 8080 };

/** IPA's example layout, on GPT for a BIOS node: the members start 8 MiB in, leaving room for grub. */
const TARGET_RAID_CONFIG = {
  logical_disks: [
    { size_gb: 2, raid_level: '1', controller: 'software', is_root_volume: true, volume_name: 'root' },
    { size_gb: 'MAX', raid_level: '0', controller: 'software', volume_name: 'data' },
  ],
};
const NODE = {
  uuid: 'raid-bios-node',
  target_raid_config: TARGET_RAID_CONFIG,
  properties: { capabilities: 'boot_mode:bios,disk_label:gpt' },
  instance_info: {},
  driver_internal_info: {},
};

/** A 64 MiB ext4 partition image: busybox and the grub doubles (so the chroot runs them), and a marker. */
async function makeRootImage(dir: string, marker: Buffer): Promise<TestImage> {
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  installBusybox(tree);
  installGrubDoubles(tree);
  await writeFile(join(tree, 'etc/marker'), marker);
  const path = join(dir, 'root.img');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, path, '64M']);
  return digests(path);
}

/**
 * grub for BIOS on a software RAID root where md exists (the ramdisk's kernel; this machine's
 * has none): the ramdisk boots through SeaBIOS with two disks, standalone, and gets
 * create_configuration on GPT, prepare_image of a partition image onto the root array, and
 * install_bootloader. The root filesystem carries a grub-install double that refuses a GPT
 * disk without a BIOS boot partition, as grub-install does. The host then reads each disk
 * image's table and boot code, and the root filesystem inside the array.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveTools)('grub for BIOS on a software RAID root (a BIOS boot partition and grub on each holder), in the ramdisk', () => {
  let dir: string;
  let image: BuildResult;
  let vm: RamdiskVm;
  let command: RamdiskCommand;
  let images: ImageServer;
  let root: TestImage;
  const marker = randomBytes(4096);
  const disks: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-bios-'));
    image = await buildTestRamdisk(join(dir, 'image'), { bootc: false });
    root = await makeRootImage(dir, marker);
    images = new ImageServer();
    await images.start();
    images.serve('/root.img', { path: root.path });
    disks.push(...(await sparseDiskImages(dir, ['a', 'b'], 5 * GiB)));
    const port = await freePort();
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      disks,
      mac: '52:54:00:12:34:59',
      hostForwards: [{ hostPort: port, guestPort: 9999 }],
      guestForwards: [{ ...GUEST_IMAGES, hostPort: Number(new URL(images.url).port) }],
      // No ipa-api-url: IPA's standalone mode, the API without a token. grub runs only when allowed.
      append: 'ina-enable-bios-bootloader-install=1',
    });
    command = ramdiskCommands(`http://127.0.0.1:${port}`, vm, 600_000);
    await vm.waitForLine('agent API listening', 300);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('create_configuration, a partition image on the array, install_bootloader twice: each disk has a BIOS boot partition and grub, the root holds the image', async () => {
    await command('clean.execute_clean_step', { step: { interface: 'raid', step: 'create_configuration', args: {} }, node: NODE, ports: [] });
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/root.img`;
    await command('standby.prepare_image', {
      image_info: {
        id: 'root', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: root.sha256,
        image_type: 'partition', root_mb: 256, swap_mb: 0, ephemeral_mb: 0, ephemeral_format: null, preserve_ephemeral: false,
      },
    });
    const uuids = (await command('standby.get_partition_uuids', {})) as { 'root uuid': string };
    await command('image.install_bootloader', { root_uuid: uuids['root uuid'], target_boot_mode: 'bios' });
    // Again (a rebuild, a retried deploy step): the BIOS boot partitions are there; none is added.
    await command('image.install_bootloader', { root_uuid: uuids['root uuid'], target_boot_mode: 'bios' });
    // The serial console runs behind the API: wait for the last line, then count.
    await vm.waitForLine('/dev/vdb has a BIOS boot partition already', 60);
    expect(vm.count('has a BIOS boot partition already')).toBe(2);
    await command('standby.sync', {});
    await vm.stop();

    for (const [i, disk] of disks.entries()) {
      const bios = sfdiskTable(disk).partitions.filter((p) => p.type === BIOS_BOOT_TYPE);
      expect(bios.map((p) => p.name), `BIOS boot partitions on ${disk}`).toEqual([`bios-boot-part-${i}`]);
      expect(bios[0]!.size * 512).toBe(2 * MiB);
      // In the 8 MiB gap create_configuration left in front of the member partitions.
      expect(bios[0]!.start).toBe(2048);
      // The double writes its marker where grub-install puts boot.img: the MBR's boot code.
      expect(readAt(disk, 0, 11).toString()).toBe('GRUB-DOUBLE');
    }

    // The root array's own table (the partition image layout) and its root filesystem.
    const array = rootArrayData(disks[0]!);
    try {
      const partitions = sfdiskTable(array.loop).partitions;
      const rootPart = partitions.find((p) => p.size * 512 === 256 * MiB);
      expect(rootPart, `a 256 MiB root partition in ${JSON.stringify(partitions)}`).toBeDefined();
      const rootFs = readOnlyLoop(array.loop, rootPart!.start * 512, rootPart!.size * 512);
      try {
        const cat = (path: string) => execFileSync('debugfs', ['-R', `cat ${path}`, rootFs.loop], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 16 * MiB });
        expect(cat('/etc/marker').equals(marker)).toBe(true);
        const log = cat('/var/log/grub-double.log').toString();
        const installs = [...log.matchAll(/^argv: grub-install (\S+)$/gm)].map((m) => m[1]);
        expect(installs).toEqual(['/dev/vda', '/dev/vdb', '/dev/vda', '/dev/vdb']);
        expect([...log.matchAll(/^installed: (\S+)$/gm)].map((m) => m[1])).toEqual(installs);
        expect(log).toMatch(/^argv: grub-mkconfig -o \/boot\/grub\/grub.cfg$/m);
      } finally {
        rootFs.release();
      }
    } finally {
      array.release();
    }
  }, 900_000);
});
