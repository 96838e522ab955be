import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hashPrefix, makeDiskImage, pack, partitionTableOf, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { LoopDevice } from '../helpers/loop.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const canRun = prerequisite('root for loop devices', isRoot);
const MiB = 1 << 20;

function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'write-image', ...args], (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

/** `ironic-node-agent write-image`: the agent's data path as a standalone tool (issue 4, item 9). */
describe.skipIf(!canRun)('ironic-node-agent write-image', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  let image: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-cli-'));
    // The image is exactly the device's size: its backup GPT is already at the end.
    image = await makeDiskImage(dir, 'disk.raw', { size: 32 * MiB, dataEvery: 2 });
    disk = await LoopDevice.create(32 * MiB);
    server = new ImageServer();
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a local file with its sha256: exit 0, the device holds the image', async () => {
    const r = await cli([image.path, disk.path, '--checksum', image.sha256]);
    expect(r.stderr).toContain('sha256 verified');
    expect(r.code, r.stderr).toBe(0);
    expect(await hashPrefix(disk.path, image.size)).toBe(image.sha256);
  });

  test('a zstd image over HTTP with a checksum file URL', async () => {
    const zst = await pack(image, 'zstd', join(dir, 'disk.raw.zst'));
    const url = server.serve('/disk.raw.zst', { path: zst.path });
    const sums = server.serve('/SHA512SUMS', { data: Buffer.from(`${'0'.repeat(128)}  other.img\n${zst.sha512}  disk.raw.zst\n`) });
    const r = await cli([url, disk.path, '--checksum', sums, '--retry-interval', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(await hashPrefix(disk.path, image.size)).toBe(image.sha256);
  });

  test('a wrong checksum: exit 1, the message, and no partition table left', async () => {
    const r = await cli([image.path, disk.path, '--checksum', 'e'.repeat(64), '--retries', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Image failed to verify against checksum');
    expect(partitionTableOf(disk.path)).toBeUndefined();
  });

  test('no checksum, or not a device: refused before anything is written', async () => {
    const none = await cli([image.path, disk.path]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--checksum is required');
    const notDevice = await cli([image.path, join(dir, 'not-a-device'), '--checksum', image.sha256]);
    expect(notDevice.code).toBe(1);
  });

  test('Ctrl-C during a stalled download: exit 1, interrupted, and no partition table left', async () => {
    execFileSync('dd', [`if=${image.path}`, `of=${disk.path}`, 'bs=4M', 'conv=fsync', 'status=none']);
    expect(partitionTableOf(disk.path)).toBe('gpt');
    const url = server.serve('/stall.raw', { path: image.path });
    server.inject('/stall.raw', { stall: 20 * MiB });
    const child = spawn(process.execPath, [CLI, 'write-image', url, disk.path, '--checksum', image.sha256], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // A progress line: bytes are on the disk and the server has gone silent past them.
        if (/\d+\.\d% /.test(stderr)) resolve();
      });
    });
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toContain('interrupted by SIGINT');
    expect(partitionTableOf(disk.path)).toBeUndefined();
  }, 60_000);
});
