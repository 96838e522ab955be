import type { Clock } from '../clock.ts';
import { AgentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';
import { blockDeviceInfo, type BlockDeviceInfo } from './block-device.ts';
import { DeviceWriteError, ImageTooLargeError } from './block-sink.ts';
import type { ExpectedChecksum } from './checksum.ts';
import { DecodeError, decode, type DecodedStream } from './decode.ts';
import {
  ImageError,
  RestartTransfer,
  imageChecksumError,
  imageDownloadError,
  imageDownloadOutOfSpaceError,
  invalidImage,
} from './errors.ts';
import {
  SNIFF_BYTES,
  checkQcow2Safety,
  decideWriteMethod,
  detectCompression,
  detectDiskFormat,
  parseQcow2Header,
  type Compression,
  type DiskFormat,
  type FormatPolicy,
  type WriteMethod,
} from './formats.ts';
import { InlineHasher } from './hasher.ts';
import { wholeDevice, type ImageTarget } from './image-target.ts';
import { Qcow2Writer, RawWriter, type ImageWriter, type WriterContext } from './image-writers.ts';
import type { Progress } from './progress.ts';
import type { ImageSource } from './source.ts';
import { peek, tap } from './stages.ts';

export interface WriteImageOptions {
  imageId: string;
  /** The target, already chosen; the guard is asked again before it is opened. */
  device: string;
  /** Where on it the image goes (default: the whole device). */
  target?(device: BlockDeviceInfo): ImageTarget;
  /** The error for an image that does not fit the target (default: IPA's InvalidImage). */
  tooLarge?(reason: string): ImageError;
  /** A fresh source per attempt (the whole transfer is retried, spec §9.4). */
  openSource(): Promise<ImageSource>;
  expected: ExpectedChecksum;
  policy: FormatPolicy;
  retries: number;
  retryIntervalSeconds: number;
  run: RunCommand;
  log: Logger;
  clock: Clock;
  guard(): Promise<void>;
  progress?: Progress;
  /** Sees the image's first MiB before it is committed: refuse there and the disk stays unbootable. */
  beforeCommit?(head: Buffer, device: BlockDeviceInfo): Promise<void> | void;
  /** The machine is going down (ctx.signal): stop at once, wipe, never retry. */
  signal?: AbortSignal | undefined;
}

export interface WriteImageResult {
  device: BlockDeviceInfo;
  /** Size of the image on the disk. */
  bytes: number;
  receivedBytes: number;
  compression: Compression;
  format: DiskFormat;
  method: WriteMethod;
  algorithm: string;
  /** Digest of the bytes received, and of the bytes written (null when qemu-img wrote them). */
  received: string;
  written: string | null;
  /** The committed first MiB, for the caller's partition-table work. */
  head: Buffer;
  seconds: number;
}

/**
 * Streams an image onto a block device: source -> sniff -> decode -> verify -> sink
 * (DESIGN.md "The image data path"). The whole transfer is retried as IPA retries it; a
 * failure at any point leaves the disk without a partition table.
 */
export async function writeImageToDevice(opts: WriteImageOptions): Promise<WriteImageResult> {
  const started = opts.clock.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await attemptWrite(opts);
      return { ...result, seconds: opts.clock.now() - started };
    } catch (raw) {
      const restart = raw instanceof RestartTransfer;
      const err = toImageError(raw, opts);
      if (opts.signal?.aborted) throw interrupted(opts);
      if ((!restart && !err.retryable) || attempt >= opts.retries) throw err;
      opts.log.warn(
        { image: opts.imageId, attempt: attempt + 1, of: opts.retries + 1, err: err.details },
        `Image download failed, ${attempt + 1} of ${opts.retries + 1}: ${err.details}`,
      );
      if (!restart) await opts.clock.sleep(opts.retryIntervalSeconds, opts.signal).catch(() => undefined);
      if (opts.signal?.aborted) throw interrupted(opts);
    }
  }
}

async function attemptWrite(opts: WriteImageOptions): Promise<Omit<WriteImageResult, 'seconds'>> {
  opts.signal?.throwIfAborted();
  const device = await blockDeviceInfo(opts.device);
  const source = await opts.openSource();
  // A stalled read would not notice the signal: closing the source ends it at once.
  const stop = () => void source.close();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const progress = opts.progress;
  progress?.restart(source.size);
  let receivedBytes = 0;
  try {
    const counted = tap(source, (chunk) => {
      receivedBytes += chunk.length;
      progress?.onReceived(receivedBytes);
    });
    const raw = await peek(counted, SNIFF_BYTES);
    const compression = detectCompression(raw.head);
    let receivedHasher: InlineHasher | undefined;
    let declaredSize: number | undefined;
    let image = raw;
    let decoded: DecodedStream | undefined;
    if (compression !== 'none') {
      const hasher = new InlineHasher(opts.expected.algorithm);
      receivedHasher = hasher;
      decoded = decode(tap(raw.stream, (c) => hasher.update(c)), compression, { onDeclaredSize: (n) => (declaredSize = n) });
      image = await peek(decoded, SNIFF_BYTES);
    }
    const format = detectDiskFormat(image.head);
    const method = decideWriteMethod(format, opts.policy);
    const expectedSize = compression === 'none' ? source.size : declaredSize;
    opts.log.info(
      { image: opts.imageId, source: source.description, size: source.size ?? null, compression, format, method, device: device.path, algorithm: opts.expected.algorithm },
      `writing image ${opts.imageId} (${compression === 'none' ? '' : `${compression}-compressed `}${format}) to ${device.path}`,
    );
    const target = opts.target?.(device) ?? wholeDevice(device);
    const ctx: WriterContext = {
      device, target, run: opts.run, log: opts.log, guard: opts.guard,
      hashAlgorithm: opts.expected.algorithm,
      onWritten: (n) => progress?.onWritten(n),
    };
    let writer: ImageWriter;
    if (method === 'qcow2') {
      const header = parseQcow2Header(image.head);
      checkQcow2Safety(header);
      writer = await Qcow2Writer.open(ctx, header, compression === 'none' ? source.size : undefined, (f) => progress?.converting(f));
    } else {
      // A zstd header declares only its first frame's size: a lower bound, refused early when too big.
      if (compression !== 'none' && expectedSize !== undefined && expectedSize > target.size) {
        throw new ImageTooLargeError(`the image (at least ${expectedSize} bytes) is larger than the space on ${device.path} (${target.size} bytes)`);
      }
      writer = await RawWriter.open(ctx, compression === 'none' ? expectedSize : undefined);
      // The received bytes are the image: the source may put them where the sink wants them;
      // else the decoder may put the image there.
      if (compression === 'none' && writer.memory) source.readInto?.(writer.memory);
      if (decoded && writer.memory) decoded.decodeInto(writer.memory);
    }
    try {
      for await (const chunk of image.stream) {
        opts.signal?.throwIfAborted();
        await writer.write(chunk);
      }
      opts.signal?.throwIfAborted();
      const { bytes, digest } = await writer.finish();
      opts.signal?.throwIfAborted();
      progress?.finishing();
      const received = receivedHasher ? await receivedHasher.digest() : digest!;
      const matches = (d: string | undefined) => d !== undefined && d.toLowerCase() === opts.expected.value;
      // A compressed image may be given the checksum of what it decompresses to.
      if (!matches(received) && !(compression !== 'none' && matches(digest))) {
        throw imageChecksumError(opts.imageId, device.path, opts.expected.value, received);
      }
      opts.log.info({ image: opts.imageId, algorithm: opts.expected.algorithm, received, written: digest ?? null }, `image ${opts.imageId} verified (${opts.expected.algorithm})`);
      let head = Buffer.alloc(0);
      await writer.commit(async (h) => {
        head = Buffer.from(h);
        await opts.beforeCommit?.(h, device);
      });
      return {
        device, bytes: method === 'qcow2' ? parseQcow2Header(image.head).virtualSize : bytes, receivedBytes, compression, format, method,
        algorithm: opts.expected.algorithm, received, written: method === 'qcow2' ? null : (digest ?? null), head,
      };
    } catch (err) {
      await writer.abort();
      throw err;
    } finally {
      await writer.close();
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    await source.close();
  }
}

/** The write stopped because the machine is going down (a reboot or the agent stopping). */
function interrupted(opts: WriteImageOptions): ImageError {
  const reason = opts.signal?.reason;
  const why = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
  return nonRetryable(imageDownloadError(opts.imageId, `the write to ${opts.device} was interrupted: ${why}`));
}

/** Every failure as IPA's error type (spec §9.4), so Ironic shows the operator the real cause. */
function toImageError(err: unknown, opts: WriteImageOptions): ImageError {
  if (opts.signal?.aborted) return interrupted(opts);
  if (err instanceof ImageError) return err;
  if (err instanceof RestartTransfer) return imageDownloadError(opts.imageId, err.message);
  if (err instanceof ImageTooLargeError) return opts.tooLarge?.(err.message) ?? invalidImage(`Image ${opts.imageId} cannot be written: ${err.message}`);
  if (err instanceof DecodeError) return invalidImage(`Image ${opts.imageId} cannot be decoded: ${err.message}`);
  if (err instanceof DeviceWriteError) {
    const msg = `Unable to write image to device ${opts.device}. Error: ${err.message}`;
    return err.code === 'ENOSPC' ? imageDownloadOutOfSpaceError(opts.imageId, msg) : nonRetryable(imageDownloadError(opts.imageId, msg));
  }
  if (err instanceof AgentError) return new ImageError(err.type, err.code, err.summary, err.details, false);
  return nonRetryable(imageDownloadError(opts.imageId, err instanceof Error ? err.message : String(err)));
}

/** A failing disk will not heal in a retry interval: report it at once (IPA would retry). */
function nonRetryable(err: ImageError): ImageError {
  return new ImageError(err.type, err.code, err.summary, err.details, false);
}
