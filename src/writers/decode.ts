import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { SNIFF_BYTES, type Compression } from './formats.ts';
import { NativeInflate, inflateInto, type InflateKind, type OutputMemory } from './inflate.ts';
import { ZstdFrameSplitter, type FrameSegment } from './zstd-frames.ts';

/**
 * Decoders for transport-compressed images: a stage that takes the received stream and
 * yields the image. gzip and zstd decode on the event loop straight into the sink's buffers
 * (inflate.ts: no allocation, no copy; zstd decodes at several GB/s, gzip at about 2.5 here);
 * where node:zlib's native handle is missing they go through its streams, which run in the
 * thread pool with a large output chunkSize (spec/packages.md: 16 KiB is 3-5x slower than
 * 1 MiB). xz goes through `xz -dc -T0` (about 3x faster than any JavaScript decoder).
 */
const CHUNK = 1 << 20;

/** A decoded stream. Its chunks are borrowed (source.ts), like the received ones. */
export interface DecodedStream extends AsyncIterable<Buffer> {
  /**
   * From the next chunk on, decode into `memory` (BlockSink's SinkMemory, by offset in the
   * decoded stream), so the sink takes the chunks in place. False when this decoder cannot.
   */
  decodeInto(memory: OutputMemory): boolean;
}

export class DecodeError extends Error {
  override name = 'DecodeError';
  readonly compression: Compression;

  constructor(compression: Compression, message: string) {
    super(`the ${compression} stream is corrupt or truncated: ${message}`);
    this.compression = compression;
  }
}

export interface DecodeHooks {
  /** The decoded size, when the stream declares it (a zstd frame header). */
  onDeclaredSize?(bytes: number): void;
}

export function decode(input: AsyncIterable<Buffer>, compression: Compression, hooks: DecodeHooks = {}): DecodedStream {
  switch (compression) {
    case 'none':
      return asDecoded(input);
    case 'gzip':
      return nativeDecode('gzip', (output, position) => {
        const decoder = NativeInflate.open('gzip');
        return decoder ? inflateInto(input, decoder, output, position) : through(input, createGunzip({ chunkSize: CHUNK }));
      });
    case 'zstd':
      return nativeDecode('zstd', (output, position) => zstdFrames(input, hooks, output, position));
    case 'xz':
      return asDecoded(wrapErrors('xz', xz(input)));
  }
}

function asDecoded(stream: AsyncIterable<Buffer>): DecodedStream {
  return { [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](), decodeInto: () => false };
}

/**
 * A decoder writing into memory it is given: its own buffer until decodeInto() names the
 * sink's. Its chunks are views of that buffer, valid until the next read (source.ts).
 * The caller reads only the sniffed head (SNIFF_BYTES) before it names the sink's memory,
 * so the own buffer is that small at first, and CHUNK only for a decoded stream that never
 * goes to the sink's memory (a compressed qcow2): a 1 MiB first chunk was a 1 MiB buffer
 * plus peek's 1 MiB copy of it for every compressed image.
 */
function nativeDecode(
  kind: InflateKind,
  make: (output: () => OutputMemory, position: { offset: number }) => AsyncIterable<Buffer>,
): DecodedStream {
  let own: Buffer | undefined;
  const ownMemory: OutputMemory = {
    where: (offset) => {
      const size = offset < SNIFF_BYTES ? SNIFF_BYTES : CHUNK;
      if (!own || own.length < size) own = Buffer.allocUnsafeSlow(size);
      return own;
    },
    ready: () => true,
  };
  let sink: OutputMemory | undefined;
  const stream = wrapErrors(kind, make(() => sink ?? ownMemory, { offset: 0 }));
  return {
    [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
    decodeInto: (memory) => {
      sink = memory;
      return true;
    },
  };
}

/**
 * `input` through a zlib transform, with backpressure and errors from either side. Input
 * chunks are borrowed (source.ts): the next one is read only when zlib has consumed this one.
 */
async function* through(input: AsyncIterable<Buffer>, transform: Transform): AsyncIterable<Buffer> {
  const pump = (async () => {
    try {
      for await (const chunk of input) {
        await new Promise<void>((resolve, reject) => transform.write(chunk, (err) => (err ? reject(err) : resolve())));
      }
      transform.end();
    } catch (err) {
      transform.destroy(err as Error);
    }
  })();
  try {
    yield* transform as AsyncIterable<Buffer>;
    await pump;
  } finally {
    transform.destroy();
  }
}

async function* wrapErrors(compression: Compression, stream: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  try {
    yield* stream;
  } catch (err) {
    if (err instanceof DecodeError || !isDecoderError(err)) throw err;
    throw new DecodeError(compression, (err as Error).message);
  }
}

/** zlib and zstd-frame errors are decode errors; a failing source (network) is not. */
function isDecoderError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return err.name === 'ZstdFrameError' || err.name === 'XzError' || (typeof code === 'string' && /^(Z_|ZSTD_)/.test(code));
}

/** Each zstd frame through its own decoder: node:zlib stops after one frame. */
async function* zstdFrames(
  input: AsyncIterable<Buffer>,
  hooks: DecodeHooks,
  output: () => OutputMemory,
  position: { offset: number },
): AsyncIterable<Buffer> {
  const splitter = new ZstdFrameSplitter();
  const source = input[Symbol.asyncIterator]();
  const queue: FrameSegment[] = [];
  let sourceDone = false;
  let announced = false;

  async function pull(): Promise<void> {
    const next = await source.next();
    if (next.done) {
      sourceDone = true;
      splitter.finish();
      return;
    }
    queue.push(...splitter.feed(next.value));
    if (!announced && splitter.firstFrameContentSize !== undefined) {
      announced = true;
      hooks.onDeclaredSize?.(splitter.firstFrameContentSize);
    }
  }
  // The bytes of one frame, pulled from the source as the decoder asks for them.
  async function* frame(): AsyncIterable<Buffer> {
    for (;;) {
      if (queue.length === 0) {
        if (sourceDone) return;
        await pull();
        continue;
      }
      const seg = queue.shift()!;
      if (seg.bytes.length > 0) yield seg.bytes;
      if (seg.end) return;
    }
  }

  for (;;) {
    while (queue.length === 0 && !sourceDone) await pull();
    if (queue.length === 0) return;
    const decoder = NativeInflate.open('zstd');
    yield* decoder ? inflateInto(frame(), decoder, output, position) : through(frame(), createZstdDecompress({ chunkSize: CHUNK }));
  }
}

class XzError extends Error {
  override name = 'XzError';
}

/** `xz -dc -T0` as a pipeline stage: stdin fed from the stream, stdout yielded. */
async function* xz(input: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const { execa } = await import('execa');
  const child = execa('xz', ['-dc', '-T0'], { buffer: false, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', reject: false });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const stdin = child.stdin!;
  // EPIPE when xz gives up early; its exit status says why.
  stdin.on('error', () => undefined);
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const chunk of input) {
        if (stdin.destroyed) return;
        // The chunk is borrowed (source.ts): the next read waits until xz has it.
        const written = new Promise<void>((resolve) => stdin.write(chunk, () => resolve()));
        // The loser's listeners must go, or every pause leaves two behind for the whole image.
        const settled = new AbortController();
        await Promise.race([written, once(stdin, 'close', { signal: settled.signal })]);
        settled.abort();
      }
      stdin.end();
    } catch (err) {
      feedError = err;
      child.kill();
    }
  })();
  try {
    yield* child.stdout as AsyncIterable<Buffer>;
    await feeding;
    if (feedError) throw feedError;
    const result = await child;
    if (result.failed) {
      if ((result as { code?: string }).code === 'ENOENT') throw new Error('xz is not installed (needed to decode xz images)');
      throw new XzError(stderr.trim() || `xz exited with ${result.exitCode}`);
    }
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
