import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { realClock } from '../../src/clock.ts';
import { runCommand } from '../../src/run.ts';
import { blockDeviceInfo } from '../../src/writers/block-device.ts';
import { BlockSink } from '../../src/writers/block-sink.ts';
import { decode } from '../../src/writers/decode.ts';
import { HttpSource } from '../../src/writers/http-source.ts';
import { peek } from '../../src/writers/stages.ts';
import { hashRange } from '../helpers/disk-images.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { memoryLogger } from '../helpers/logger.ts';
import { LoopDevice } from '../helpers/loop.ts';

const MiB = 1 << 20;
const canRun = prerequisite('root for loop devices', process.getuid?.() === 0);

/**
 * The raw-image fast path: the socket reads body bytes straight into the block sink's
 * buffers. The disk must hold the image exactly, also when connections are cut and resumed
 * at odd offsets and when the sink is slower than the network.
 */
describe.skipIf(!canRun)('image bytes read straight into the block sink', () => {
  let dir: string;
  let disk: LoopDevice;
  let server: ImageServer;
  const image = randomBytes(48 * MiB + 4096 * 3 + 512);
  const digest = createHash('sha256').update(image).digest('hex');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-in-place-'));
    await writeFile(join(dir, 'image.raw'), image);
    disk = await LoopDevice.create(64 * MiB);
    server = new ImageServer();
    await server.start();
    server.serve('/image.raw', { path: join(dir, 'image.raw') });
    server.serve('/chunked.raw', { path: join(dir, 'image.raw'), chunked: true });
  });
  // Junk where the image goes: bytes misplaced by one test must not be hidden by the last one's.
  beforeEach(async () => {
    const fh = await open(disk.path, 'r+');
    try {
      await fh.write(Buffer.alloc(64 * MiB, 0xa5), 0, 64 * MiB, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
  afterAll(async () => {
    await server?.stop();
    await disk?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  async function write(path: string, slowEveryMiB = 0): Promise<{ bytes: number; digest: string | undefined; inPlace: number }> {
    const { log } = memoryLogger();
    const source = await HttpSource.open([`${server.url}${path}`], {
      imageId: 'img',
      http: { timeoutSeconds: 5, insecure: false, cafile: undefined, proxies: {}, noProxy: undefined, authorization: undefined },
      retry: { retries: 5, intervalSeconds: 0, deadline: undefined, maxDurationSeconds: 0 },
      clock: realClock,
      log,
    });
    const sink = await BlockSink.open({ device: await blockDeviceInfo(disk.path), run: runCommand, log, guard: async () => undefined, holdBack: true, hashAlgorithm: 'sha256' });
    try {
      source.readInto(sink.memoryForSource);
      let next = slowEveryMiB * MiB;
      for await (const chunk of source) {
        await sink.write(chunk);
        if (slowEveryMiB > 0 && sink.bytes >= next) {
          next += slowEveryMiB * MiB;
          await new Promise((r) => setTimeout(r, 30));
        }
      }
      const result = await sink.finish();
      await sink.commit();
      return { ...result, inPlace: sink.bytesReadInPlace };
    } finally {
      await sink.close();
      await source.close();
    }
  }

  test('a whole image: the disk holds it, nearly every byte read in place', async () => {
    const r = await write('/image.raw', 3);
    expect(r).toMatchObject({ bytes: image.length, digest });
    expect(r.inPlace).toBeGreaterThan(image.length - 8 * MiB);
    expect(await hashRange(disk.path, 0, image.length)).toBe(digest);
  });

  test('connections cut at odd offsets resume into the right place', async () => {
    server.inject('/image.raw', { cut: 5 * MiB + 17 }, { cut: 11 * MiB + 4095 }, { cut: 3 * MiB + 1 });
    const r = await write('/image.raw');
    expect(r).toMatchObject({ bytes: image.length, digest });
    expect(server.requestsFor('/image.raw').slice(-4).map((q) => q.status)).toEqual([200, 206, 206, 206]);
    expect(r.inPlace).toBeGreaterThan(0);
    expect(await hashRange(disk.path, 0, image.length)).toBe(digest);
  });

  test('a chunked body is copied as before (its framing is not the stream)', async () => {
    const r = await write('/chunked.raw');
    expect(r).toMatchObject({ bytes: image.length, digest, inPlace: 0 });
    expect(await hashRange(disk.path, 0, image.length)).toBe(digest);
  });
});

/**
 * The compressed path: gzip and zstd decode straight into the block sink's buffers, after the
 * first bytes (sniffed before the sink exists) went through the decoder's own buffer.
 */
describe.skipIf(!canRun)('images decoded straight into the block sink', () => {
  let disk: LoopDevice;
  // Compressible, not trivially: what a decoder sees in a disk image.
  const image = Buffer.alloc(40 * MiB + 4096 * 5);
  for (let at = 0, x = 1; at < image.length; at += 4096) {
    x = (x * 1103515245 + 12345) >>> 0;
    image.fill(x & 0xff, at, at + 2048);
    randomBytes(512).copy(image, at + 2048);
  }
  const digest = createHash('sha256').update(image).digest('hex');

  beforeAll(async () => {
    disk = await LoopDevice.create(64 * MiB);
  });
  afterAll(async () => {
    await disk?.destroy();
  });

  async function* pieces(data: Buffer, size: number): AsyncIterable<Buffer> {
    for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
  }

  test.each([
    ['gzip', () => gzipSync(image)],
    ['zstd in two frames', () => Buffer.concat([zstdCompressSync(image.subarray(0, 9 * MiB + 3)), zstdCompressSync(image.subarray(9 * MiB + 3))])],
  ] as const)('%s: the disk holds the image, nearly every byte decoded in place', async (name, pack) => {
    const { log } = memoryLogger();
    const compression = name === 'gzip' ? 'gzip' : 'zstd';
    const decoded = decode(pieces(pack(), 100_003), compression);
    const { stream } = await peek(decoded, 64 * 1024);
    const sink = await BlockSink.open({ device: await blockDeviceInfo(disk.path), run: runCommand, log, guard: async () => undefined, holdBack: true, hashAlgorithm: 'sha256' });
    try {
      expect(decoded.decodeInto(sink.memoryForSource)).toBe(true);
      for await (const chunk of stream) await sink.write(chunk);
      expect(await sink.finish()).toMatchObject({ bytes: image.length, digest });
      await sink.commit();
      expect(sink.bytesReadInPlace).toBeGreaterThan(image.length - 2 * MiB);
    } finally {
      await sink.close();
    }
    expect(await hashRange(disk.path, 0, image.length)).toBe(digest);
  });
});
