import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { fillEsp } from '../helpers/bootloader-disks.ts';
import { digests, type TestImage } from '../helpers/disk-images.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { freePort } from '../helpers/ports.ts';
import { OVMF_VARS, RamdiskVm, sparseDiskImages } from './harness/qemu.ts';
import { buildTestRamdisk, canBuildRamdisk } from './harness/ramdisk-image.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveTools = prerequisite('sgdisk, mkfs.vfat, mtools, mdadm', ['sgdisk', 'mkfs.vfat', 'mdir', 'mdadm'].every((t) => spawnSync('which', [t]).status === 0));

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
 * A 64 MiB whole-disk GPT image: a 32 MiB ESP holding EFI/BOOT/BOOTX64.EFI (random bytes the
 * host finds again), the rest a Linux partition. The FAT is made in a file and copied in.
 */
async function makeEspImage(dir: string, loader: Buffer): Promise<TestImage> {
  const path = join(dir, 'wd.img');
  await writeFile(path, '');
  await truncate(path, 64 * MiB);
  execFileSync('sgdisk', ['-n', '1:2048:+32M', '-t', '1:ef00', '-c', '1:EFI', '-n', '2:0:0', '-t', '2:8300', '-c', '2:root', path], { stdio: 'ignore' });
  const fat = join(dir, 'esp.fat');
  execFileSync('mkfs.vfat', ['-C', fat, String(32 * 1024)], { stdio: 'ignore' });
  fillEsp(fat, { 'EFI/BOOT/BOOTX64.EFI': loader });
  execFileSync('dd', [`if=${fat}`, `of=${path}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  return digests(path);
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
  let vm: RamdiskVm;
  let api: string;
  let images: ImageServer;
  let wd: TestImage;
  let vars: string;
  const loader = randomBytes(8192);
  const disks: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-raid-esp-'));
    image = await buildTestRamdisk(join(dir, 'image'), { bootc: false });
    wd = await makeEspImage(dir, loader);
    images = new ImageServer();
    await images.start();
    images.serve('/wd.img', { path: wd.path });
    disks.push(...(await sparseDiskImages(dir, ['a', 'b'], 5 * GiB)));
    vars = join(dir, 'vars.fd');
    await copyFile(OVMF_VARS, vars);
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    vm = RamdiskVm.start({
      kernel: image.kernel.path,
      initramfs: image.initramfs.path,
      disks,
      uefi: { vars },
      mac: '52:54:00:12:34:58',
      hostForwards: [{ hostPort: port, guestPort: 9999 }],
      guestForwards: [{ ...GUEST_IMAGES, hostPort: Number(new URL(images.url).port) }],
      // No ipa-api-url: IPA's standalone mode, the API without a token.
      append: '',
    });
    await vm.waitForLine('agent API listening', 300);
  }, 900_000);

  afterAll(async () => {
    await vm?.stop();
    await images?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function command(name: string, params: unknown): Promise<unknown> {
    const res = await request(`${api}/v1/commands/?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, params }),
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    const body = (await res.body.json()) as { command_status: string; command_error: unknown; command_result: unknown };
    if (body.command_status !== 'SUCCEEDED') throw new Error(`${name}: ${JSON.stringify(body.command_error)}\n--- VM console ---\n${vm.tail(60)}`);
    return body.command_result;
  }

  test('create_configuration, prepare_image, install_bootloader: an entry per ESP RAID member, each member a FAT with the loader', async () => {
    await command('clean.execute_clean_step', {
      step: { interface: 'raid', step: 'create_configuration', args: {} },
      node: { uuid: 'raid-node', target_raid_config: TARGET_RAID_CONFIG, properties: { capabilities: 'boot_mode:uefi' }, instance_info: {}, driver_internal_info: {} },
      ports: [],
    });
    const url = `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}/wd.img`;
    await command('standby.prepare_image', { image_info: { id: 'wd', urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: wd.sha256 } });
    await command('image.install_bootloader', { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    // Again: the image's ESP is gone now; the loaders are found on the ESP RAID and registered again.
    await command('image.install_bootloader', { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    expect(vm.count('was moved to the ESP RAID')).toBe(1);
    await command('standby.sync', {});
    await vm.stop();

    // An EFI_LOAD_OPTION holds its description and file path in UTF-16LE.
    const store = await readFile(vars);
    expect(store.includes(Buffer.from('ironic1 (RAID, part0)\0', 'utf16le'))).toBe(true);
    expect(store.includes(Buffer.from('ironic1 (RAID, part1)\0', 'utf16le'))).toBe(true);
    expect(store.includes(Buffer.from('\\EFI\\BOOT\\BOOTX64.EFI', 'utf16le'))).toBe(true);

    for (const disk of disks) {
      const table = JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as {
        partitiontable: { partitions: { node: string; start: number; size: number; type: string; name?: string }[] };
      };
      const esp = table.partitiontable.partitions.find((p) => p.name?.startsWith('uefi-holder-'));
      expect(esp, `an ESP partition on ${disk}`).toBeDefined();
      expect(esp!.type).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
      expect(esp!.size * 512).toBe(550 * MiB);
      // Metadata 1.0: the FAT starts at the partition's first byte, as the firmware reads it.
      const at = `${disk}@@${esp!.start * 512}`;
      const listing = execFileSync('mdir', ['-i', at, '-/', '-b', '-a', '::/'], { env: MTOOLS, encoding: 'utf8' });
      expect(listing).toContain('::/EFI/BOOT/BOOTX64.EFI');
      const copy = execFileSync('mtype', ['-i', at, '::/EFI/BOOT/BOOTX64.EFI'], { env: MTOOLS, maxBuffer: 16 * MiB });
      expect(copy.equals(loader)).toBe(true);
    }

    // The image's own ESP inside the root array (md0p1, 1 MiB into md0's data) was wiped.
    const root = JSON.parse(execFileSync('sfdisk', ['--json', disks[0]!], { encoding: 'utf8' })) as { partitiontable: { partitions: { start: number; size: number }[] } };
    const member = root.partitiontable.partitions[0]!;
    const loop = execFileSync('losetup', ['--find', '--show', '--read-only', '--offset', String(member.start * 512), '--sizelimit', String(member.size * 512), disks[0]!], { encoding: 'utf8' }).trim();
    let dataOffset: number;
    try {
      const examined = execFileSync('mdadm', ['--examine', loop], { encoding: 'utf8' });
      expect(examined).toMatch(/Name : \S*root/);
      dataOffset = Number(/Data Offset : (\d+) sectors/.exec(examined)![1]);
    } finally {
      spawnSync('losetup', ['-d', loop]);
    }
    // wipefs removes the signatures blkid knows (mtools would still read the rest of the FAT).
    const probe = spawnSync('blkid', ['-p', '-o', 'export', '-O', String((member.start + dataOffset) * 512 + MiB), disks[0]!], { encoding: 'utf8' });
    expect(probe.stdout).not.toMatch(/TYPE=vfat/);
  }, 900_000);
});
