import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { agentCommands, type CommandStatus } from '../helpers/agent-commands.ts';
import { hashRange, makeFilesystemImage, pack, partitionTableOf, readBytes, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { blkidProbe, sfdiskTable } from '../helpers/disk-inspect.ts';

const canRun = prerequisite('root for loop devices, mkfs.ext4, mkfs.vfat, qemu-img, zstd, genisoimage', isRoot &&
  ['mkfs.ext4', 'mkfs.vfat', 'mkswap', 'qemu-img', 'zstd', 'genisoimage', 'sgdisk', 'sfdisk', 'debugfs'].every(onPath));

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const MiB = 1 << 20;
const TOKEN = 'p'.repeat(43);
const ROOT_UUID = '0e8a2a9c-4a8a-4d1e-9d0b-5c1d3c6f7a11';

/**
 * Partition images through standby.prepare_image (spec §9.6): the layout, the image streamed
 * into the root partition by the whole-disk data path, the filesystems around it, the config
 * drive, the partition UUIDs; and the rules that keep a disk unbootable until verified.
 */
describe.skipIf(!canRun)('partition images onto a loop device (spec §9.6)', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  let api: Awaited<ReturnType<typeof startAgent>>;
  let rootfs: TestImage;
  let configdrive: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-partimg-'));
    disk = await LoopDevice.create(5 * 1024 * MiB);
    server = new ImageServer();
    await server.start();
    rootfs = await makeFilesystemImage(dir, 'root.ext4', {
      sizeMb: 48, uuid: ROOT_UUID,
      files: { 'etc/fstab': 'UUID=0e8a2a9c-4a8a-4d1e-9d0b-5c1d3c6f7a11 / ext4 defaults 0 1\n', 'boot/efi/EFI/BOOT/BOOTX64.EFI': 'MZ fake loader', 'srv/data.bin': Buffer.alloc(8 * MiB, 7) },
    });
    const isoDir = join(dir, 'cd');
    await mkdir(join(isoDir, 'openstack', 'latest'), { recursive: true });
    await writeFile(join(isoDir, 'openstack', 'latest', 'meta_data.json'), '{"uuid": "n1"}');
    execFileSync('genisoimage', ['-quiet', '-o', join(dir, 'cd.iso'), '-V', 'config-2', '-r', '-J', isoDir]);
    configdrive = gzipSync(await readFile(join(dir, 'cd.iso'))).toString('base64');
    api = await startAgent({
      flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] },
      cmdline: new Map([
        ['ipa-image-download-connection-retries', '1'],
        ['ipa-image-download-connection-retry-interval', '0'],
        ['ipa-image-download-connection-timeout', '2'],
      ]),
    });
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await server?.stop();
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const commands = () => agentCommands(api.url, TOKEN);

  async function setNode(node: Record<string, unknown>): Promise<void> {
    const r = await commands().post('poll.set_node_info', { node_info: { uuid: 'node-1', properties: {}, instance_info: {}, driver_internal_info: {}, ...node } }, true);
    expect(r.body.command_status).toBe('SUCCEEDED');
  }

  async function prepare(imageInfo: Record<string, unknown>, cd?: string): Promise<CommandStatus> {
    const started = await commands().post('standby.prepare_image', { image_info: imageInfo, ...(cd ? { configdrive: cd } : {}) });
    expect(started.status).toBe(200);
    return commands().finished(started.body.id);
  }

  function partitionInfo(id: string, image: TestImage, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const url = server.serve(`/${id}`, { path: image.path });
    return {
      id, urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256, disk_format: 'raw', image_type: 'partition',
      root_mb: 128, swap_mb: 0, ephemeral_mb: 0, ephemeral_format: null, preserve_ephemeral: false, ...extra,
    };
  }

  async function uuids(): Promise<Record<string, unknown>> {
    return (await commands().post('standby.get_partition_uuids', {}, true)).body.command_result ?? {};
  }

  /** A GPT the disk had before, to show that a refused deploy wrote nothing. */
  function markDisk(): void {
    execFileSync('wipefs', ['--all', '--force', disk.path], { stdio: 'ignore' });
    execFileSync('sgdisk', ['-o', '-n', '1:2048:+8M', '-c', '1:marker', disk.path], { stdio: 'ignore' });
  }

  // Each test starts from the kernel's view of an unpartitioned disk, as a fresh ramdisk has.
  beforeEach(() => {
    try {
      execFileSync('partx', ['-d', disk.path], { stdio: 'ignore' });
    } catch {
      // nothing registered
    }
  });

  test('bios + msdos: swap, config drive and root last; the root partition holds the image byte for byte', async () => {
    await setNode({});
    const s = await prepare(partitionInfo('part-bios', rootfs, { swap_mb: 16 }), configdrive);
    expect(s.command_error).toBeNull();
    const t = sfdiskTable(disk.path);
    expect(t.label).toBe('dos');
    expect(t.partitions.map((p) => p.type)).toEqual(['82', '83', '83']);
    expect(t.partitions.map((p) => p.bootable === true)).toEqual([false, false, true]);
    // Back to back from 1 MiB (sectors of 512 bytes): swap 16 MiB, config drive rounded up to 1 MiB, root 128 MiB.
    expect(t.partitions.map((p) => [p.start, p.size])).toEqual([[2048, 32768], [34816, 2048], [36864, 262144]]);
    expect(await hashRange(disk.partition(3), 0, rootfs.size)).toBe(rootfs.sha256);
    expect(blkidProbe(disk.partition(1))).toMatchObject({ TYPE: 'swap', LABEL: 'swap1' });
    expect(blkidProbe(disk.partition(2))).toMatchObject({ TYPE: 'iso9660', LABEL: 'config-2' });
    expect(blkidProbe(disk.partition(3))).toMatchObject({ TYPE: 'ext4', UUID: ROOT_UUID });
    expect(await uuids()).toEqual({
      partitions: { swap: disk.partition(1), configdrive: disk.partition(2), root: disk.partition(3) },
      'root uuid': ROOT_UUID,
      'efi system partition uuid': null,
    });
    expect(s.command_result).toEqual({ result: `prepare_image: image (part-bios) written to device ${disk.path} root_uuid=${ROOT_UUID}` });
  });

  test('uefi: a qcow2 partition image with SHA-512 and an ephemeral partition on gpt, the ESP formatted', async () => {
    await setNode({ instance_info: { deploy_boot_mode: 'uefi' } });
    const qcow = await pack(rootfs, 'qcow2', join(dir, 'root.qcow2'));
    const info = partitionInfo('part-uefi', qcow, { disk_format: 'qcow2', os_hash_algo: 'sha512', os_hash_value: qcow.sha512, ephemeral_mb: 64, ephemeral_format: 'ext4', deploy_boot_mode: 'uefi' });
    const s = await prepare(info);
    expect(s.command_error).toBeNull();
    const t = sfdiskTable(disk.path);
    expect(t.label).toBe('gpt');
    expect(t.partitions.map((p) => p.type)).toEqual([
      'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4', '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
    ]);
    // ESP 550 MiB (IPA's default), ephemeral 64 MiB, root 128 MiB.
    expect(t.partitions.map((p) => p.size / 2048)).toEqual([550, 64, 128]);
    expect(await hashRange(disk.partition(3), 0, rootfs.size)).toBe(rootfs.sha256);
    const esp = blkidProbe(disk.partition(1));
    expect(esp).toMatchObject({ TYPE: 'vfat', LABEL: 'efi-part' });
    expect(blkidProbe(disk.partition(2))).toMatchObject({ TYPE: 'ext4', LABEL: 'ephemeral0' });
    const u = await uuids();
    expect(u).toMatchObject({ 'root uuid': ROOT_UUID, 'efi system partition uuid': esp.UUID });
    expect(s.command_result).toEqual({
      result: `prepare_image: image (part-uefi) written to device ${disk.path} root_uuid=${ROOT_UUID} efi_system_partition_uuid=${esp.UUID}`,
    });
  });

  test('a zstd partition image with the checksum of what it decompresses to', async () => {
    await setNode({});
    const zst = await pack(rootfs, 'zstd', join(dir, 'root.ext4.zst'));
    const s = await prepare({ ...partitionInfo('part-zst', zst), os_hash_value: rootfs.sha256 });
    expect(s.command_error).toBeNull();
    expect(await hashRange(disk.partition(1), 0, rootfs.size)).toBe(rootfs.sha256);
  });

  test('a wrong checksum: ImageChecksumError, no partition table and no root superblock on the disk', async () => {
    await setNode({});
    const s = await prepare({ ...partitionInfo('part-bad', rootfs), os_hash_value: 'e'.repeat(64) });
    expect(s.command_error?.type).toBe('ImageChecksumError');
    expect(partitionTableOf(disk.path)).toBeUndefined();
    // Root would start at 1 MiB; its first MiB (the ext4 superblock) was never written.
    expect((await readBytes(disk.path, MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    expect(await uuids()).toEqual({});
  });

  test('an image larger than root_mb is refused before anything is written (IPA\'s message)', async () => {
    await setNode({});
    markDisk();
    const s = await prepare(partitionInfo('part-big', rootfs, { root_mb: 32 }));
    expect(s.command_error?.type).toBe('InvalidCommandParamsError');
    expect(s.command_error?.details).toMatch(/^Root partition is too small for requested image: .*Root size: 32 MB/);
    expect(sfdiskTable(disk.path).partitions.map((p) => p.name)).toEqual(['marker']);
  });

  test.each([
    ['root_mb larger than the disk', { root_mb: 6 * 1024 }, {}, /layout needs .* MiB but the disk has/],
    ['a missing root_mb', { root_mb: undefined }, {}, /root_mb: missing/],
    ['an unknown disk label', {}, { properties: { capabilities: 'disk_label:GPT2' } }, /Unknown disk label "GPT2"/],
    ['an unknown boot mode', {}, { instance_info: { deploy_boot_mode: 'legacy' } }, /Unknown boot mode "legacy"/],
    ['an ephemeral partition without a format', { ephemeral_mb: 16 }, {}, /ephemeral_format must be set/],
  ])('%s: InvalidCommandParamsError, the disk untouched', async (_name, extra, node, message) => {
    await setNode(node);
    markDisk();
    const s = await prepare(partitionInfo('part-invalid', rootfs, extra));
    expect(s.command_error?.type).toBe('InvalidCommandParamsError');
    expect(s.command_error?.details).toMatch(message);
    expect(sfdiskTable(disk.path).partitions.map((p) => p.name)).toEqual(['marker']);
  });

  test('preserve_ephemeral keeps the ephemeral partition and its data; a failed redeploy keeps them too', async () => {
    await setNode({});
    const first = await prepare(partitionInfo('part-eph', rootfs, { ephemeral_mb: 32, ephemeral_format: 'ext4' }));
    expect(first.command_error).toBeNull();
    // The tenant's data on the ephemeral partition (partition 1 on bios + msdos).
    await writeFile(join(dir, 'keep.txt'), 'tenant data');
    execFileSync('debugfs', ['-w', '-R', `write ${join(dir, 'keep.txt')} keep.txt`, disk.partition(1)], { stdio: 'ignore' });
    const before = sfdiskTable(disk.path);

    const other = await makeFilesystemImage(dir, 'root2.ext4', { sizeMb: 40, uuid: '5b1d6f1e-1111-4a2b-8c3d-9e8f7a6b5c4d', files: { 'etc/hostname': 'rebuilt\n' } });
    const rebuild = await prepare(partitionInfo('part-eph-2', other, { ephemeral_mb: 32, ephemeral_format: 'ext4', preserve_ephemeral: true }));
    expect(rebuild.command_error).toBeNull();
    expect(sfdiskTable(disk.path)).toEqual(before);
    expect(await hashRange(disk.partition(2), 0, other.size)).toBe(other.sha256);
    expect(execFileSync('debugfs', ['-R', 'cat keep.txt', disk.partition(1)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toBe('tenant data');

    const failed = await prepare({ ...partitionInfo('part-eph-bad', rootfs, { ephemeral_mb: 32, ephemeral_format: 'ext4', preserve_ephemeral: true }), os_hash_value: '0'.repeat(64) });
    expect(failed.command_error?.type).toBe('ImageChecksumError');
    execFileSync('partx', ['-u', disk.path], { stdio: 'ignore' });
    expect(sfdiskTable(disk.path)).toEqual(before);
    expect(execFileSync('debugfs', ['-R', 'cat keep.txt', disk.partition(1)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toBe('tenant data');
    // The root partition no longer has a filesystem to mount or boot.
    expect((await readBytes(disk.partition(2), 0, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
  });

  test('preserve_ephemeral on a disk without the earlier layout fails with IPA\'s error and writes nothing', async () => {
    await setNode({});
    markDisk();
    const s = await prepare(partitionInfo('part-eph-missing', rootfs, { ephemeral_mb: 32, ephemeral_format: 'ext4', swap_mb: 8, preserve_ephemeral: true }));
    expect(s.command_error?.type).toBe('DeploymentError');
    expect(s.command_error?.details).toBe(`'swap' device '${disk.partition(2)}' not found`);
    expect(sfdiskTable(disk.path).partitions.map((p) => p.name)).toEqual(['marker']);
  });
});
