import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeDiskImage, partitionTableOf, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { agentCommands, type CommandStatus } from '../helpers/agent-commands.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root for loop devices', isRoot);
const MiB = 1 << 20;
const TOKEN = 'c'.repeat(43);

/** Checksum URLs that cannot give a checksum (spec §9.3.1): IPA's error, and the image is never fetched. */
describe.skipIf(!canRun)('a wrong checksum URL', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  let image: TestImage;
  let api: Awaited<ReturnType<typeof startAgent>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-sumurl-'));
    disk = await LoopDevice.create(5 * 1024 * MiB);
    server = new ImageServer();
    await server.start();
    image = await makeDiskImage(dir, 'disk.raw', { size: 8 * MiB, diskId: 0x0badc0de, dataEvery: 2 });
    api = await startAgent({
      flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] },
      cmdline: new Map([['ipa-image-download-connection-retries', '1'], ['ipa-image-download-connection-retry-interval', '0']]),
    });
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await server?.stop();
    await disk?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  async function prepare(imageInfo: Record<string, unknown>): Promise<CommandStatus> {
    const commands = agentCommands(api.url, TOKEN);
    const started = await commands.post('standby.prepare_image', { image_info: imageInfo });
    return started.body.command_status === 'RUNNING' ? commands.finished(started.body.id) : started.body;
  }

  test.each([
    ['a 404', (base: string) => `${base}/missing/SHA256SUMS`, /Received status code 404/],
    ['a file that does not name the image', () => server.serve('/other/SHA256SUMS', { data: Buffer.from(`${'1'.repeat(64)}  other.img\n${'2'.repeat(64)}  another.img\n`) }), /Checksum file does not contain name disk.raw/],
  ] as const)('%s: the command fails with IPA\'s error, the image is never fetched, the agent answers', async (_name, sumsUrl, details) => {
    const path = `/img-${Math.random().toString(36).slice(2)}/disk.raw`;
    const url = server.serve(path, { path: image.path });
    const s = await prepare({ id: 'img-sumurl', urls: [url], checksum: sumsUrl(server.url) });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.type).toMatch(/^ImageDownload(Fatal)?Error$/);
    expect(s.command_error?.details).toMatch(details);
    expect(server.requestsFor(path)).toEqual([]);
    expect(partitionTableOf(disk.path)).toBeUndefined();
    const status = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}`);
    expect(status.statusCode).toBe(200);
  }, 60_000);
});
