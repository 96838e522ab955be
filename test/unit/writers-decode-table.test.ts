import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { DecodeError, decode } from '../../src/writers/decode.ts';
import { readPartitionTable } from '../../src/writers/partition-table.ts';

const MiB = 1 << 20;

async function* chunks(data: Buffer, size = 64 * 1024): AsyncIterable<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

/** Chunks are borrowed (source.ts): valid until the next read, so they are copied. */
async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Pseudo-random but compressible: what a disk image looks like to a decoder. */
function sample(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed;
  for (let i = 0; i < bytes; i += 4096) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.fill(x & 0xff, i, i + 2048);
  }
  return b;
}

describe('decoders (spec §9.2: gzip, zstd by frames)', () => {
  const a = sample(3 * MiB, 1);
  const b = sample(2 * MiB, 2);

  test('several concatenated zstd frames decode to the concatenation, and announce the first frame size', async () => {
    let declared: number | undefined;
    const out = await collect(decode(chunks(Buffer.concat([zstdCompressSync(a), zstdCompressSync(b)]), 7777), 'zstd', { onDeclaredSize: (n) => (declared = n) }));
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
    expect(declared).toBe(a.length);
  });

  test('trailing garbage after a zstd frame is a DecodeError, not silently dropped', async () => {
    const data = Buffer.concat([zstdCompressSync(a), Buffer.from('this is not a zstd frame at all, just junk bytes')]);
    await expect(collect(decode(chunks(data), 'zstd'))).rejects.toBeInstanceOf(DecodeError);
  });

  test('a truncated zstd frame and a truncated gzip stream are DecodeErrors', async () => {
    const z = zstdCompressSync(a);
    await expect(collect(decode(chunks(z.subarray(0, z.length - 100)), 'zstd'))).rejects.toBeInstanceOf(DecodeError);
    const g = gzipSync(a);
    await expect(collect(decode(chunks(g.subarray(0, g.length >> 1)), 'gzip'))).rejects.toBeInstanceOf(DecodeError);
  });

  test('a source failing mid-stream is not mistaken for a decode error', async () => {
    async function* failing(): AsyncIterable<Buffer> {
      yield gzipSync(a).subarray(0, 1000);
      throw new Error('connection reset');
    }
    const err = await collect(decode(failing(), 'gzip')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(DecodeError);
  });
});

describe('the held first MiB is checked before it is committed (spec §7.1 step 4)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ina-ptable-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function gptHead(): Buffer {
    const file = join(dir, 'gpt.img');
    writeFileSync(file, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${8 * MiB}`, file]);
    execFileSync('sgdisk', ['-n', '1:2048:+1M', '-n', '2:0:+2M', file], { stdio: 'ignore' });
    return readFileSync(file).subarray(0, MiB);
  }

  test('a GPT made by sgdisk: two partitions, its backup header at the image\'s last sector', () => {
    expect(readPartitionTable(gptHead(), 512, '/dev/x')).toEqual({ type: 'gpt', partitions: 2, backupLba: BigInt(8 * MiB / 512 - 1) });
  });

  test('an MBR with one partition', () => {
    const head = Buffer.alloc(MiB);
    head[446 + 4] = 0x83;
    head.writeUInt32LE(2048, 446 + 8);
    head.writeUInt32LE(4096, 446 + 12);
    head[510] = 0x55;
    head[511] = 0xaa;
    expect(readPartitionTable(head, 512, '/dev/x')).toEqual({ type: 'dos', partitions: 1 });
  });

  test('no table, an empty MBR, a corrupted GPT header or entries, and a 512-byte GPT on a 4K device are refused', () => {
    expect(() => readPartitionTable(Buffer.alloc(MiB), 512, '/dev/x')).toThrow(/No partitions found on the device \/dev\/x/);
    const emptyMbr = Buffer.alloc(MiB);
    emptyMbr[510] = 0x55;
    emptyMbr[511] = 0xaa;
    expect(() => readPartitionTable(emptyMbr, 512, '/dev/x')).toThrow(/No partitions found/);
    const badHeader = gptHead();
    badHeader.writeUInt8(badHeader.readUInt8(512 + 40) ^ 0xff, 512 + 40);
    expect(() => readPartitionTable(badHeader, 512, '/dev/x')).toThrow(/GPT header checksum does not match/);
    const badEntries = gptHead();
    badEntries.writeUInt8(badEntries.readUInt8(1024 + 56) ^ 0xff, 1024 + 56);
    expect(() => readPartitionTable(badEntries, 512, '/dev/x')).toThrow(/partition entries checksum does not match/);
    expect(() => readPartitionTable(gptHead(), 4096, '/dev/x')).toThrow(/uses 512-byte sectors, the device \/dev\/x has 4096-byte sectors/);
  });
});
