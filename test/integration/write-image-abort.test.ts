import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeDiskImage, partitionTableOf, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root for loop devices', isRoot);
const MiB = 1 << 20;
const TOKEN = 'a'.repeat(43);

/**
 * ctx.signal (the machine going down) stops a running image write at once, even while the
 * server is silent, and the half-written disk is left without a partition table.
 */
describe.skipIf(!canRun)('an image write interrupted by the machine going down', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  let image: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-abort-'));
    disk = await LoopDevice.create(5 * 1024 * MiB);
    server = new ImageServer();
    await server.start();
    image = await makeDiskImage(dir, 'disk.raw', { size: 40 * MiB, diskId: 0x5eed1234, dataEvery: 3 });
    // The disk starts bootable-looking: the abort must leave it without any partition table.
    execFileSync('dd', [`if=${image.path}`, `of=${disk.path}`, 'bs=4M', 'conv=fsync', 'status=none']);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await disk?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  test('stopping the agent during a stalled download fails prepare_image as interrupted and wipes the disk', async () => {
    expect(partitionTableOf(disk.path)).toBe('gpt');
    const url = server.serve('/stall', { path: image.path });
    server.inject('/stall', { stall: 8 * MiB });
    // A read timeout far beyond the test's own: only the signal can end this write in time.
    const api = await startAgent({
      flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] },
      cmdline: new Map([
        ['ipa-image-download-connection-timeout', '600'],
        ['ipa-image-download-connection-retries', '3'],
        ['ipa-image-download-connection-retry-interval', '600'],
      ]),
    });
    try {
      const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'standby.prepare_image', params: { image_info: { id: 'img-abort', urls: [url], os_hash_algo: 'sha256', os_hash_value: image.sha256 } } }),
      });
      expect(((await res.body.json()) as { command_status: string }).command_status).toBe('RUNNING');
      while (!api.logs().some((l) => typeof l.msg === 'string' && l.msg.startsWith('writing image img-abort'))) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await api.agent.stop();
      const failed = api.logs().find((l) => l.msg === 'command failed');
      expect(failed).toMatchObject({ command: 'standby.prepare_image', status: 'FAILED' });
      expect(String(failed?.err)).toMatch(/the write to \/dev\/loop\d+ was interrupted/);
      expect(partitionTableOf(disk.path)).toBeUndefined();
      // One request: neither a resume nor a retry followed the abort.
      expect(server.requestsFor('/stall').map((r) => r.status)).toEqual([200]);
    } finally {
      await api.stop();
    }
  }, 60_000);
});
