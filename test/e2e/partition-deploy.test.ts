import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { espFiles, espRead } from '../helpers/bootloader-disks.ts';
import { makeFilesystemImage, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';
import { blkidProbe, sfdiskTable } from '../helpers/disk-inspect.ts';

const canRun = prerequisite('Ironic (apt-get install python3-ironic ironic-common), root for loop devices, mkfs.ext4, genisoimage', existsSync(IRONIC_BIN) && isRoot);

const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1'];
const MiB = 1 << 20;
const ROOT_UUID = '7d3c1b2a-9e8f-4a6b-8c5d-1e2f3a4b5c6d';

/**
 * Ironic's `direct` interface with a partition image (spec §9.6): image_type=partition,
 * root_gb, swap_mb and a config drive in the provision request. The conductor runs
 * write_image, asks get_partition_uuids and hands the root and ESP UUIDs to
 * install_bootloader (UEFI nodes, spec §7.3) before the node is active.
 */
describe.skipIf(!canRun)('an unmodified Ironic deploys a partition image with the direct interface', () => {
  let dir: string;
  let images: ImageServer;
  let ironic: Ironic;
  let disk: LoopDevice;
  let agent: AgentProcess;
  let uuid: string;
  let rootfs: TestImage;
  let configdrive: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-e2e-partition-'));
    images = new ImageServer();
    await images.start();
    rootfs = await makeFilesystemImage(dir, 'root.ext4', {
      sizeMb: 64, uuid: ROOT_UUID,
      files: {
        'etc/fstab': `UUID=${ROOT_UUID} / ext4 defaults 0 1\n`,
        'boot/efi/EFI/BOOT/BOOTX64.EFI': 'MZ fallback loader of the image',
        'boot/efi/EFI/debian/grubx64.efi': 'MZ grub of the image',
        'srv/payload.bin': Buffer.alloc(16 * MiB, 0x5a),
      },
    });
    const isoDir = join(dir, 'cd');
    await mkdir(join(isoDir, 'openstack', 'latest'), { recursive: true });
    await writeFile(join(isoDir, 'openstack', 'latest', 'meta_data.json'), '{"uuid": "partition-e2e"}');
    execFileSync('genisoimage', ['-quiet', '-o', join(dir, 'cd.iso'), '-V', 'config-2', '-r', '-J', isoDir]);
    configdrive = gzipSync(await readFile(join(dir, 'cd.iso'))).toString('base64');
    disk = await LoopDevice.create(5 * 1024 * MiB);
    // UEFI: Ironic 21.4 skips set_boot_device(disk), which fake management refuses, for Lenovo nodes in UEFI mode.
    ironic = await Ironic.start({ automatedClean: false });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    // The agent lays out the disk for the node's boot mode; with no hint it would use the
    // ramdisk's (BIOS here) while Ironic's default target_boot_mode is uefi.
    uuid = await ironic.enroll({ macs, deployInterface: 'direct', properties: { capabilities: 'boot_mode:uefi' } });
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2 ipa-image-download-connection-retries=1 ipa-image-download-connection-retry-interval=1`,
      flags: [...FAST, '--allow-device', disk.path],
    });
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
    await ironic.provision(uuid, 'provide');
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await images?.stop();
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('root_gb, swap and a config drive: active, the partitions as Ironic asked, UUIDs as blkid sees them', async () => {
    const url = images.serve('/root.ext4', { path: rootfs.path });
    await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: {
      image_source: url, image_os_hash_algo: 'sha256', image_os_hash_value: rootfs.sha256, image_disk_format: 'raw',
      image_type: 'partition', root_gb: 1, swap_mb: 64,
    } }]);
    await ironic.provision(uuid, 'active', { wait: null, configdrive });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 240, 'active');
    expect(node.last_error).toBeNull();
    expect(node.provision_state).toBe('active');

    // UEFI node: gpt with the ESP first, then swap, the config drive, and root last.
    const table = sfdiskTable(disk.path);
    expect(table.label).toBe('gpt');
    expect(table.partitions.map((p) => p.size / 2048)).toEqual([550, 64, 1, 1024]);
    const esp = blkidProbe(disk.partition(1));
    expect(esp).toMatchObject({ TYPE: 'vfat', LABEL: 'efi-part' });
    expect(blkidProbe(disk.partition(2))).toMatchObject({ TYPE: 'swap', LABEL: 'swap1' });
    expect(blkidProbe(disk.partition(3))).toMatchObject({ TYPE: 'iso9660', LABEL: 'config-2' });
    expect(blkidProbe(disk.partition(4))).toMatchObject({ TYPE: 'ext4', UUID: ROOT_UUID });
    // install_bootloader mounts the root and appends the ESP to its fstab (as IPA does), so the
    // filesystem is compared file by file here; partition-image.test.ts checks the written
    // bytes before anything mounts them.
    execFileSync('e2fsck', ['-fn', disk.partition(4)], { stdio: 'ignore' });
    const debugfs = (cmd: string) => execFileSync('debugfs', ['-R', cmd, disk.partition(4)], { maxBuffer: 64 * MiB, stdio: ['ignore', 'pipe', 'ignore'] });
    expect(debugfs('cat /srv/payload.bin').equals(Buffer.alloc(16 * MiB, 0x5a))).toBe(true);
    expect(debugfs('cat /boot/efi/EFI/debian/grubx64.efi').toString()).toBe('MZ grub of the image');

    // What Ironic recorded and passed on came from get_partition_uuids, and matches blkid.
    expect(node.driver_internal_info.root_uuid_or_disk_id).toBe(ROOT_UUID);
    const installs = agent.lines.filter((l) => l.msg === 'executing command' && l.command === 'image.install_bootloader');
    expect(installs.at(-1)?.params).toMatchObject({ root_uuid: ROOT_UUID, efi_system_part_uuid: esp.UUID, target_boot_mode: 'uefi' });

    // This ramdisk did not boot via UEFI (no NVRAM to write): the image's EFI assets were
    // copied onto its fresh ESP, where the firmware's removable-media path finds them.
    expect(espFiles(disk.partition(1)).sort()).toEqual(['EFI/BOOT/BOOTX64.EFI', 'EFI/debian/grubx64.efi']);
    expect(espRead(disk.partition(1), 'EFI/BOOT/BOOTX64.EFI').toString()).toBe('MZ fallback loader of the image');
    expect(debugfs('cat /etc/fstab').toString()).toBe(`UUID=${ROOT_UUID} / ext4 defaults 0 1\nUUID=${esp.UUID}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`);
    await ironic.provision(uuid, 'deleted');
  });
});
