import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashRange, makeDiskImage, pack, partitionTableOf, readBytes, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { agentCommands, type CommandStatus } from '../helpers/agent-commands.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root for loop devices, qemu-img, zstd, xz, genisoimage', isRoot && ['qemu-img', 'zstd', 'xz', 'genisoimage'].every(onPath));

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const MiB = 1 << 20;
const TOKEN = 't'.repeat(43);

/**
 * standby.prepare_image end to end inside one agent: a real HTTP server on 127.0.0.1, a loop
 * device as the disk, images made by the real sgdisk, gzip, zstd, xz and qemu-img.
 */
describe.skipIf(!canRun)('standby.prepare_image onto a loop device (spec §7.1, §9)', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  let api: Awaited<ReturnType<typeof startAgent>>;
  let image: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-images-'));
    // IPA's smallest root device is 4 GiB; the sparse file takes only what is written.
    disk = await LoopDevice.create(5 * 1024 * MiB);
    server = new ImageServer();
    await server.start();
    image = await makeDiskImage(dir, 'disk.raw', { size: 40 * MiB, diskId: 0x1234abcd, dataEvery: 3 });
    api = await startAgent({
      flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] },
      cmdline: new Map([
        ['ipa-image-download-connection-retries', '2'],
        ['ipa-image-download-connection-retry-interval', '0'],
        ['ipa-image-download-connection-timeout', '2'],
      ]),
    });
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await server?.stop();
    await disk?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  // The agent starts in beforeAll; its URL is known only then.
  const post = (name: string, params: unknown, wait = false) => agentCommands(api.url, TOKEN).post(name, params, wait);
  const finished = (id: string) => agentCommands(api.url, TOKEN).finished(id);

  async function prepare(imageInfo: Record<string, unknown>, configdrive?: string): Promise<CommandStatus> {
    const started = await post('standby.prepare_image', { image_info: imageInfo, ...(configdrive ? { configdrive } : {}) });
    expect(started.status).toBe(200);
    return finished(started.body.id);
  }

  function serve(file: TestImage, name: string): string {
    return server.serve(`/${name}`, { path: file.path });
  }

  test('a raw GPT image: the disk holds it byte for byte, root uuid is the disk signature', async () => {
    const url = serve(image, 'raw');
    const s = await prepare({ id: 'img-raw', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256, disk_format: 'raw' });
    expect(s.command_error).toBeNull();
    expect(s.command_status).toBe('SUCCEEDED');
    // The backup GPT moved to the end of the larger disk; everything before it is the image.
    expect(await hashRange(disk.path, MiB, image.size - MiB)).toBe(await hashRange(image.path, MiB, image.size - MiB));
    expect(partitionTableOf(disk.path)).toBe('gpt');
    const uuids = await post('standby.get_partition_uuids', {}, true);
    expect(uuids.body.command_result).toMatchObject({ 'root uuid': expect.any(String) });
    expect(s.command_result).toMatchObject({ result: expect.stringMatching(/^prepare_image: image \(img-raw\) written to device \/dev\/loop\d+ root_uuid=/) });
  });

  test.each([
    ['gzip', 'sha512'],
    ['zstd', 'sha256'],
    ['xz', 'sha256'],
    ['qcow2', 'sha512'],
  ] as const)('a %s image verified with %s of the file as served', async (packing, algorithm) => {
    const packed = await pack(image, packing, join(dir, `disk.${packing}`));
    const url = serve(packed, packing);
    const s = await prepare({ id: `img-${packing}`, urls: [url], os_hash_algo: algorithm, os_hash_value: packed[algorithm], disk_format: packing === 'qcow2' ? 'qcow2' : 'raw' });
    expect(s.command_error).toBeNull();
    expect(await hashRange(disk.path, MiB, image.size - MiB)).toBe(await hashRange(image.path, MiB, image.size - MiB));
  });

  // The decoder's output never goes to the sink's memory (qcow2 is staged through its own sink
  // and converted later), so it decodes into its own buffer past the sniffed head as well.
  test('a gzip-compressed qcow2 image: decoded, staged and converted', async () => {
    const qcow2 = await pack(image, 'qcow2', join(dir, 'disk-gz.qcow2'));
    const packed = await pack(qcow2, 'gzip', join(dir, 'disk.qcow2.gz'));
    const url = serve(packed, 'qcow2.gz');
    const s = await prepare({ id: 'img-qcow2-gz', urls: [url], os_hash_algo: 'sha256', os_hash_value: packed.sha256, disk_format: 'qcow2' });
    expect(s.command_error).toBeNull();
    expect(await hashRange(disk.path, MiB, image.size - MiB)).toBe(await hashRange(image.path, MiB, image.size - MiB));
  });

  test('a wrong checksum fails with ImageChecksumError and leaves no partition table', async () => {
    const url = serve(image, 'bad');
    const s = await prepare({ id: 'img-bad', urls: [url], os_hash_algo: 'sha256', os_hash_value: 'f'.repeat(64) });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.type).toBe('ImageChecksumError');
    expect(partitionTableOf(disk.path)).toBeUndefined();
    expect((await readBytes(disk.path, 512, 8)).toString('latin1')).not.toBe('EFI PART');
  });

  test('an image larger than the disk is refused before anything is written', async () => {
    const big = join(dir, 'big.raw');
    execFileSync('truncate', ['-s', '6G', big]);
    const url = server.serve('/big', { path: big });
    const s = await prepare({ id: 'img-big', urls: [url], os_hash_algo: 'sha256', os_hash_value: 'a'.repeat(64) });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.details).toMatch(/larger than/);
    expect(partitionTableOf(disk.path)).toBeUndefined();
  });

  test('a connection cut mid-image resumes with a Range request and the image verifies', async () => {
    const url = serve(image, 'cut');
    server.inject('/cut', { cut: 5 * MiB });
    const s = await prepare({ id: 'img-cut', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 });
    expect(s.command_error).toBeNull();
    const statuses = server.requestsFor('/cut').map((r) => r.status);
    expect(statuses).toContain(206);
    expect(server.requestsFor('/cut').some((r) => /^bytes=\d+-$/.test(String(r.headers.range)))).toBe(true);
    expect(await hashRange(disk.path, MiB, image.size - MiB)).toBe(await hashRange(image.path, MiB, image.size - MiB));
  });

  test('a server that keeps failing exhausts the retries: ImageDownloadError, nothing written', async () => {
    const url = serve(image, 'down');
    const before = await hashRange(disk.path, 0, 2 * MiB);
    server.inject('/down', ...Array.from({ length: 20 }, () => ({ status: 503 })));
    const s = await prepare({ id: 'img-down', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.type).toBe('ImageDownloadError');
    // retries=2: 3 connection attempts in each of 3 transfer attempts, as IPA nests them (spec §9.4).
    expect(server.requestsFor('/down')).toHaveLength(9);
    expect(await hashRange(disk.path, 0, 2 * MiB)).toBe(before);
  });

  test('a config drive (gzip + base64 ISO) lands in a config-2 partition at the end of the disk', async () => {
    const url = serve(image, 'cd');
    const isoDir = join(dir, 'cd');
    await rm(isoDir, { recursive: true, force: true });
    execFileSync('mkdir', ['-p', join(isoDir, 'openstack', 'latest')]);
    await writeFile(join(isoDir, 'openstack', 'latest', 'meta_data.json'), '{"uuid": "n1"}');
    const iso = join(dir, 'cd.iso');
    execFileSync('genisoimage', ['-quiet', '-o', iso, '-V', 'config-2', '-r', '-J', isoDir]);
    const configdrive = gzipSync(await readFile(iso)).toString('base64');
    const s = await prepare({ id: 'img-cd', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 }, configdrive);
    expect(s.command_error).toBeNull();
    // Partition 2 spans the disk's last 64 MiB, as IPA creates it (sgdisk -n 0:-64MB:0).
    const parts = execFileSync('sgdisk', ['-i', '2', disk.path], { encoding: 'utf8' });
    const last = Number(/Last sector: (\d+)/.exec(parts)?.[1]);
    expect((5 * 1024 * MiB) / 512 - last).toBeLessThan(2048);
    // The agent registered the partitions with the kernel itself (this kernel has no parser).
    const label = execFileSync('blkid', ['-p', '-o', 'value', '-s', 'LABEL', disk.partition(2)], { encoding: 'utf8' }).trim();
    expect(label).toBe('config-2');
  });

  test('404 is fatal at once (ImageDownloadFatalError, no retries), 401 without credentials too', async () => {
    const s = await prepare({ id: 'img-404', urls: [`${server.url}/nothing-here`], os_hash_algo: 'sha256', os_hash_value: image.sha256 });
    expect(s.command_error?.type).toBe('ImageDownloadFatalError');
    expect(s.command_error?.details).toContain('Received status code 404');
    expect(server.requestsFor('/nothing-here')).toHaveLength(1);
    const url = server.serve('/private', { path: image.path, authorization: `Basic ${Buffer.from('ironic:secret').toString('base64')}` });
    const denied = await prepare({ id: 'img-401', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 });
    expect(denied.command_error?.type).toBe('ImageDownloadFatalError');
    const ok = await prepare({
      id: 'img-basic', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256,
      image_server_auth_strategy: 'http_basic', image_server_user: 'ironic', image_server_password: 'secret',
    });
    expect(ok.command_error).toBeNull();
    expect(JSON.stringify(api.logs())).not.toContain('secret');
  });

  test('a stalled server is resumed after the read timeout', async () => {
    const url = serve(image, 'stall');
    server.inject('/stall', { stall: 3 * MiB });
    const s = await prepare({ id: 'img-stall', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 });
    expect(s.command_error).toBeNull();
    expect(server.requestsFor('/stall').map((r) => r.status)).toEqual([200, 206]);
  });

  test('a truncated gzip stream fails the write and leaves no partition table', async () => {
    const gz = await pack(image, 'gzip', join(dir, 'trunc.gz'));
    const data = (await readFile(gz.path)).subarray(0, Math.floor(gz.size / 2));
    const url = server.serve('/trunc.gz', { data });
    const s = await prepare({ id: 'img-trunc', urls: [url], os_hash_algo: 'sha256', os_hash_value: createHash('sha256').update(data).digest('hex') });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.type).toBe('InvalidImage');
    expect(partitionTableOf(disk.path)).toBeUndefined();
  });

  test('a qcow2 image with a backing file is refused before anything is written', async () => {
    const base = join(dir, 'base.qcow2');
    const overlay = join(dir, 'overlay.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
    const data = await readFile(overlay);
    const url = server.serve('/overlay.qcow2', { data });
    const s = await prepare({ id: 'img-backing', urls: [url], os_hash_algo: 'sha256', os_hash_value: createHash('sha256').update(data).digest('hex'), disk_format: 'qcow2' });
    expect(s.command_error?.type).toBe('InvalidImage');
    expect(s.command_error?.details).toContain('backing file');
  });

  test('stream_raw_images false takes the same verified path: nothing bootable before the checksum matched', async () => {
    const url = serve(image, 'nostream');
    const s = await prepare({ id: 'img-nostream', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256, stream_raw_images: false });
    expect(s.command_error).toBeNull();
    expect(await hashRange(disk.path, MiB, image.size - MiB)).toBe(await hashRange(image.path, MiB, image.size - MiB));
  });

  test('the target disappearing mid-write fails the command, and the agent answers', async () => {
    const gone = await LoopDevice.create(5 * 1024 * MiB);
    const other = await startAgent({
      flags: { 'agent-token': TOKEN, 'allow-device': [gone.path] },
      cmdline: new Map([['ipa-image-download-connection-retries', '1'], ['ipa-image-download-connection-timeout', '2'], ['ipa-image-download-connection-retry-interval', '0']]),
    });
    try {
      const url = serve(image, 'vanish');
      server.inject('/vanish', { stall: 8 * MiB });
      const commands = agentCommands(other.url, TOKEN);
      const started = await commands.post('standby.prepare_image', { image_info: { id: 'img-vanish', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 } });
      // The stall holds the write open while the disk goes away under it. `losetup -d` would only
      // detach once the agent closes the device; shrinking it to nothing makes every later write fail.
      await new Promise((r) => setTimeout(r, 500));
      execFileSync('truncate', ['-s', '0', gone.file]);
      execFileSync('losetup', ['-c', gone.path]);
      const s = await commands.finished(started.body.id);
      expect(s.command_status).toBe('FAILED');
      expect(s.command_error?.type).toMatch(/Image|Device|BlockDevice/);
      const status = await request(`${other.url}/v1/status`);
      expect(status.statusCode).toBe(200);
      await status.body.dump();
    } finally {
      await other.stop();
      await gone.destroy();
    }
  }, 120_000);

  test('the agent still answers after all of that', async () => {
    const res = await request(`${api.url}/v1/status`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  test('bad image_info is a 400 with IPA\'s message and nothing recorded', async () => {
    const r = await post('standby.prepare_image', { image_info: { id: 'x', urls: ['http://127.0.0.1:1/x'] } });
    expect(r.status).toBe(400);
    expect(r.body.faultstring).toContain('Image checksum is not available');
    const files = await post('standby.prepare_image', { image_info: { id: 'x', urls: ['file:///etc/shadow'], checksum: 'a'.repeat(64) } });
    expect(files.status).toBe(400);
  });
});
