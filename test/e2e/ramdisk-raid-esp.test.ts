import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { fillEsp } from '../helpers/bootloader-disks.ts';
import { digests, makeFilesystemImage, type TestImage } from '../helpers/disk-images.ts';
import { sfdiskTable } from '../helpers/disk-inspect.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { freePort } from '../helpers/ports.ts';
import { readOnlyLoop, rootArrayData } from './harness/md-members.ts';
import { OVMF_VARS, RamdiskVm, sparseDiskImages } from './harness/qemu.ts';
import { ramdiskCommands, type RamdiskCommand } from './harness/ramdisk-commands.ts';
import { canBuildRamdisk, sharedTestRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveTools = prerequisite('sgdisk, mkfs.vfat, mtools, mdadm, debugfs', ['sgdisk', 'mkfs.vfat', 'mdir', 'mdadm', 'debugfs'].every((t) => spawnSync('which', [t]).status === 0));

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const MTOOLS = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' };
const GUEST_IMAGES = { guestAddress: '10.0.2.101', guestPort: 8080 };

/** IPA's example layout: a RAID-1 root, the rest of the disks as RAID-0 (so the ESP goes in the gap in front). */
const TARGET_RAID_CONFIG = {
  logical_disks: [
    { size_gb: 2, raid_level: '1', controller: 'software', is_root_volume: true, volume_name: 'root' },
    { size_gb: 'MAX', raid_level: '0', controller: 'software', volume_name: 'data' },
  ],
};

/**
 * A 64 MiB whole-disk GPT image: a 32 MiB ESP holding `files` (random bytes the host finds
 * again), the rest a Linux partition. The FAT is made in a file and copied in.
 */
async function makeEspImage(dir: string, files: Record<string, Buffer>): Promise<TestImage> {
  const path = join(dir, 'wd.img');
  await writeFile(path, '');
  await truncate(path, 64 * MiB);
  execFileSync('sgdisk', ['-n', '1:2048:+32M', '-t', '1:ef00', '-c', '1:EFI', '-n', '2:0:0', '-t', '2:8300', '-c', '2:root', path], { stdio: 'ignore' });
  const fat = join(dir, 'esp.fat');
  execFileSync('mkfs.vfat', ['-C', fat, String(32 * 1024)], { stdio: 'ignore' });
  fillEsp(fat, files);
  execFileSync('dd', [`if=${fat}`, `of=${path}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  return digests(path);
}

/** One ramdisk build for the scenarios of this file. */
const build = sharedTestRamdisk('ina-ramdisk-raid-esp-image-', { bootc: false });
afterAll(() => build.remove());

/** The ramdisk under OVMF (or SeaBIOS) with two 5 GiB disks, standalone (no ipa-api-url: IPA's API without a token). */
class RaidRamdisk {
  readonly disks: string[] = [];
  vars = '';
  vm!: RamdiskVm;
  command!: RamdiskCommand;

  async boot(dir: string, image: BuildResult, images: ImageServer, mac: string, firmware: 'uefi' | 'bios' = 'uefi'): Promise<void> {
    this.disks.push(...(await sparseDiskImages(dir, ['a', 'b'], 5 * GiB)));
    this.vars = join(dir, 'vars.fd');
    await copyFile(OVMF_VARS, this.vars);
    const port = await freePort();
    this.vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      disks: this.disks,
      ...(firmware === 'uefi' ? { uefi: { vars: this.vars } } : {}),
      mac,
      hostForwards: [{ hostPort: port, guestPort: 9999 }],
      guestForwards: [{ ...GUEST_IMAGES, hostPort: Number(new URL(images.url).port) }],
      append: '',
    });
    this.command = ramdiskCommands(`http://127.0.0.1:${port}`, this.vm, 600_000);
    await this.vm.waitForLine('agent API listening', 300);
  }

  /** The target boots UEFI whatever the ramdisk booted: the layout leaves the ESP gap. */
  createConfiguration(): Promise<unknown> {
    return this.command('clean.execute_clean_step', {
      step: { interface: 'raid', step: 'create_configuration', args: {} },
      node: { uuid: 'raid-node', target_raid_config: TARGET_RAID_CONFIG, properties: { capabilities: 'boot_mode:uefi' }, instance_info: {}, driver_internal_info: {} },
      ports: [],
    });
  }

  /** The ESP partition install_bootloader added to `disk`, its offset for mtools, and the volume ID of its FAT. */
  espOf(disk: string): { esp: { start: number; size: number; type: string }; at: string; volumeId: string } {
    const esp = sfdiskTable(disk).partitions.find((p) => p.name?.startsWith('uefi-holder-'));
    expect(esp, `an ESP partition on ${disk}`).toBeDefined();
    const probe = execFileSync('blkid', ['-p', '-o', 'export', '-O', String(esp!.start * 512), disk], { encoding: 'utf8' });
    return { esp: esp!, at: `${disk}@@${esp!.start * 512}`, volumeId: /^UUID=(.*)$/m.exec(probe)?.[1] ?? '' };
  }
}

/**
 * install_bootloader on a software RAID root where md exists (the ramdisk's kernel; this
 * machine's has none): the ramdisk boots through OVMF with two disks, standalone, and gets
 * create_configuration, prepare_image of a whole-disk image with an ESP, install_bootloader.
 * The host then reads the EFI variable store and each disk image's new ESP partition.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveTools)('UEFI boot entries on a software RAID root (ESP RAID), in the ramdisk under OVMF', () => {
  let dir: string;
  let image: BuildResult;
  let images: ImageServer;
  let wd: TestImage;
  const machine = new RaidRamdisk();
  const loader = randomBytes(8192);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-esp-'));
    image = await build.get();
    wd = await makeEspImage(dir, { 'EFI/BOOT/BOOTX64.EFI': loader });
    images = new ImageServer();
    await images.start();
    images.serve('/wd.img', { path: wd.path });
    await machine.boot(dir, image, images, '52:54:00:12:34:58');
  }, 900_000);

  afterAll(async () => {
    await machine.vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('create_configuration, prepare_image, install_bootloader: an entry per ESP RAID member, each member a FAT with the loader', async () => {
    await machine.createConfiguration();
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/wd.img`;
    await machine.command('standby.prepare_image', { image_info: { id: 'wd', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: wd.sha256 } });
    await machine.command('image.install_bootloader', { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    // Again: the image's ESP is gone now; the loaders are found on the ESP RAID and registered again.
    await machine.command('image.install_bootloader', { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    // The serial console runs behind the API: wait for the line, then count.
    await machine.vm.waitForLine('was moved to the ESP RAID', 60);
    expect(machine.vm.count('was moved to the ESP RAID')).toBe(1);
    await machine.command('standby.sync', {});
    await machine.vm.stop();

    // An EFI_LOAD_OPTION holds its description and file path in UTF-16LE.
    const store = await readFile(machine.vars);
    expect(store.includes(Buffer.from('ironic1 (RAID, part0)\0', 'utf16le'))).toBe(true);
    expect(store.includes(Buffer.from('ironic1 (RAID, part1)\0', 'utf16le'))).toBe(true);
    expect(store.includes(Buffer.from('\\EFI\\BOOT\\BOOTX64.EFI', 'utf16le'))).toBe(true);

    for (const disk of machine.disks) {
      const { esp, at } = machine.espOf(disk);
      expect(esp.type).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
      expect(esp.size * 512).toBe(550 * MiB);
      // Metadata 1.0: the FAT starts at the partition's first byte, as the firmware reads it.
      const listing = execFileSync('mdir', ['-i', at, '-/', '-b', '-a', '::/'], { env: MTOOLS, encoding: 'utf8' });
      expect(listing).toContain('::/EFI/BOOT/BOOTX64.EFI');
      const copy = execFileSync('mtype', ['-i', at, '::/EFI/BOOT/BOOTX64.EFI'], { env: MTOOLS, maxBuffer: 16 * MiB });
      expect(copy.equals(loader)).toBe(true);
    }

    // The image's own ESP inside the root array (md0p1, 1 MiB into md0's data) was wiped.
    const array = rootArrayData(machine.disks[0]!);
    try {
      // wipefs removes the signatures blkid knows (mtools would still read the rest of the FAT).
      const probe = spawnSync('blkid', ['-p', '-o', 'export', '-O', String(MiB), array.loop], { encoding: 'utf8' });
      expect(probe.stdout).not.toMatch(/TYPE=vfat/);
    } finally {
      array.release();
    }
  }, 900_000);
});

/**
 * A partition image on the RAID root under UEFI: the partition layout's 550 MiB ESP is larger
 * than the ESP RAID (550 MiB less md's superblock), so its files are copied, not its blocks,
 * onto a FAT with the same volume ID; the image's own /boot/efi/EFI loaders are preserved into
 * it first, and the image's /etc/fstab names that volume ID, which the ESP RAID carries.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveTools)('a partition image on a software RAID root under UEFI: its EFI assets on the ESP RAID, its fstab naming it', () => {
  let dir: string;
  let image: BuildResult;
  let images: ImageServer;
  let root: TestImage;
  const machine = new RaidRamdisk();
  const loader = randomBytes(8192);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-esp-part-'));
    image = await build.get();
    root = await makeFilesystemImage(dir, 'root.ext4', {
      sizeMb: 32, uuid: '5b1e7c2a-9d3f-4e8b-a6c1-2f0d4e9b7a13', files: { 'etc/fstab': 'LABEL=img-root / ext4 defaults 0 1\n', 'boot/efi/EFI/BOOT/BOOTX64.EFI': loader },
    });
    images = new ImageServer();
    await images.start();
    images.serve('/root.ext4', { path: root.path });
    await machine.boot(dir, image, images, '52:54:00:12:34:5a');
  }, 900_000);

  afterAll(async () => {
    await machine.vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('create_configuration, prepare_image (partition), install_bootloader: loader on each ESP member, fstab UUID = the ESP RAID\'s volume ID', async () => {
    await machine.createConfiguration();
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/root.ext4`;
    await machine.command('standby.prepare_image', {
      image_info: {
        id: 'root', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: root.sha256,
        image_type: 'partition', root_mb: 256, swap_mb: 0, ephemeral_mb: 0, ephemeral_format: null, preserve_ephemeral: false,
      },
    });
    const uuids = (await machine.command('standby.get_partition_uuids', {})) as { 'root uuid': string; 'efi system partition uuid': string };
    await machine.command('image.install_bootloader', { root_uuid: uuids['root uuid'], efi_system_part_uuid: uuids['efi system partition uuid'], target_boot_mode: 'uefi' });
    await machine.command('standby.sync', {});
    await machine.vm.stop();

    const store = await readFile(machine.vars);
    expect(store.includes(Buffer.from('ironic1 (RAID, part0)\0', 'utf16le'))).toBe(true);
    expect(store.includes(Buffer.from('ironic1 (RAID, part1)\0', 'utf16le'))).toBe(true);
    const volumeIds = new Set<string>();
    for (const disk of machine.disks) {
      const { at, volumeId } = machine.espOf(disk);
      const copy = execFileSync('mtype', ['-i', at, '::/EFI/BOOT/BOOTX64.EFI'], { env: MTOOLS, maxBuffer: 16 * MiB });
      expect(copy.equals(loader)).toBe(true);
      volumeIds.add(volumeId);
    }
    // The ESP RAID kept the image ESP's volume ID (the one get_partition_uuids reported).
    expect([...volumeIds]).toEqual([uuids['efi system partition uuid']]);

    const array = rootArrayData(machine.disks[0]!);
    try {
      const rootPart = sfdiskTable(array.loop).partitions.find((p) => p.size * 512 === 256 * MiB)!;
      const rootFs = readOnlyLoop(array.loop, rootPart.start * 512, rootPart.size * 512);
      try {
        const fstab = execFileSync('debugfs', ['-R', 'cat /etc/fstab', rootFs.loop], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        expect(fstab).toBe(`LABEL=img-root / ext4 defaults 0 1\nUUID=${uuids['efi system partition uuid']}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`);
      } finally {
        rootFs.release();
      }
    } finally {
      array.release();
    }
  }, 900_000);
});

/**
 * A UEFI target deployed from a ramdisk that booted through SeaBIOS: no NVRAM to write, so
 * the firmware will start \EFI\BOOT\BOOTX64.EFI. On a RAID root that file must be on the ESP
 * RAID, which the firmware reads on either disk, not on the image's ESP inside the array.
 */
describe.skipIf(!haveQemu || !haveBuild || !haveTools)('a UEFI target on a software RAID root from a BIOS-booted ramdisk: the removable-media loader on the ESP RAID', () => {
  let dir: string;
  let image: BuildResult;
  let images: ImageServer;
  let wd: TestImage;
  const machine = new RaidRamdisk();
  const grub = randomBytes(8192);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-esp-bios-'));
    image = await build.get();
    wd = await makeEspImage(dir, { 'EFI/debian/grubx64.efi': grub });
    images = new ImageServer();
    await images.start();
    images.serve('/wd.img', { path: wd.path });
    await machine.boot(dir, image, images, '52:54:00:12:34:5b', 'bios');
  }, 900_000);

  afterAll(async () => {
    await machine.vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('create_configuration, prepare_image, install_bootloader: grubx64.efi becomes EFI/BOOT/BOOTX64.EFI on each ESP member', async () => {
    await machine.createConfiguration();
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/wd.img`;
    await machine.command('standby.prepare_image', { image_info: { id: 'wd', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: wd.sha256 } });
    await machine.command('image.install_bootloader', { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    await machine.vm.waitForLine(/no UEFI boot entry was written to NVRAM; the machine will boot from .*BOOTX64\.EFI on the ESP RAID \/dev\/md\d+ \(on each of its member disks\)/, 60);
    await machine.command('standby.sync', {});
    await machine.vm.stop();
    for (const disk of machine.disks) {
      const { at } = machine.espOf(disk);
      expect(execFileSync('mtype', ['-i', at, '::/EFI/BOOT/BOOTX64.EFI'], { env: MTOOLS, maxBuffer: 16 * MiB }).equals(grub)).toBe(true);
      expect(execFileSync('mtype', ['-i', at, '::/EFI/debian/grubx64.efi'], { env: MTOOLS, maxBuffer: 16 * MiB }).equals(grub)).toBe(true);
    }
  }, 900_000);
});
