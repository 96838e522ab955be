import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { hashRange, makeDiskImage, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { pluginDir } from '../helpers/plugin-dir.ts';

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuv';
const MiB = 1 << 20;
const canRun = prerequisite('root (loop devices)', isRoot);

/** A plugin that writes an image of its choosing to a disk of its choosing, through the agent's writer. */
const WRITER_PLUGIN = `
export default {
  name: 'mirror', version: '1.0',
  steps: [
    { step: 'write_second_disk', interface: 'deploy', deploy: { priority: 0 },
      argsinfo: {
        device: { description: 'target', required: true, type: 'string' },
        url: { description: 'image', required: true, type: 'string' },
        sha256: { description: 'digest', required: true, type: 'string' },
      },
      run: async (args, ctx) => ({ uuids: await ctx.imageWriter.writeImage(
        { id: 'second', urls: [args.url], os_hash_algo: 'sha256', os_hash_value: args.sha256, disk_format: 'raw' },
        { device: args.device },
      ) }) },
  ],
};
`;

describe.skipIf(!canRun)('a plugin step writes an image with ctx.imageWriter', () => {
  let dir: string;
  let plugins: { dir: string; remove: () => Promise<void> };
  let images: ImageServer;
  let image: TestImage;
  let disk: LoopDevice;
  let other: LoopDevice;
  let api: Awaited<ReturnType<typeof startAgent>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-plugin-writer-'));
    image = await makeDiskImage(dir, 'disk.img', { size: 16 * MiB, diskId: 0x1234abcd, table: 'dos', dataEvery: 3 });
    images = new ImageServer();
    await images.start();
    disk = await LoopDevice.create(64 * MiB);
    other = await LoopDevice.create(64 * MiB);
    plugins = await pluginDir({ 'mirror.mjs': WRITER_PLUGIN });
    api = await startAgent({
      flags: { 'agent-token': TOKEN, 'plugin-dir': [plugins.dir], 'allow-device': [disk.path] },
      // A checksum mismatch is retried as IPA retries a download; once is enough here.
      cmdline: new Map([['ipa-image-download-connection-retries', '0']]),
    });
  });
  afterAll(async () => {
    await api?.stop();
    await plugins?.remove();
    await images?.stop();
    await disk?.destroy();
    await other?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const execute = async (args: Record<string, unknown>) => {
    const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'deploy.execute_deploy_step', params: { step: { interface: 'deploy', step: 'write_second_disk', args }, node: { uuid: 'node-1' }, ports: [] } }),
    });
    return (await res.body.json()) as { command_status: string; command_error: { type: string; details: string } | null; command_result: { deploy_result?: unknown } | null };
  };

  test('the image lands verified on the allowed disk; the result carries its disk identifier', async () => {
    const url = images.serve('/disk.img', { path: image.path });
    const r = await execute({ device: disk.path, url, sha256: image.sha256 });
    expect(r.command_error).toBeNull();
    expect(r.command_result?.deploy_result).toEqual({ uuids: { 'root uuid': '0x1234abcd' } });
    expect(await hashRange(disk.path, 0, image.size)).toBe(image.sha256);
  });

  test('a wrong checksum fails the step with the agent\'s error and leaves no partition table', async () => {
    const url = images.serve('/disk.img', { path: image.path });
    const r = await execute({ device: disk.path, url, sha256: 'f'.repeat(64) });
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error?.details).toMatch(/checksum/i);
    // The first test's image was there: its table is gone (blkid finds nothing: exit 2).
    expect(await hashRange(disk.path, 0, MiB)).toBe(await hashRange('/dev/zero', 0, MiB));
    expect(spawnSync('blkid', ['-p', disk.path]).status).toBe(2);
  });

  test('a disk outside the allowlist is refused before a byte is read from the server', async () => {
    const before = images.requests.length;
    const r = await execute({ device: other.path, url: images.serve('/disk.img', { path: image.path }), sha256: image.sha256 });
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error?.details).toMatch(/allow/i);
    expect(images.requests.length).toBe(before);
    expect(await hashRange(other.path, 0, MiB)).toBe(await hashRange('/dev/zero', 0, MiB));
  });
});
