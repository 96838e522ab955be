import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';
import { punchHole, type BlockDeviceInfo } from './block-device.ts';
import { BlockSink, HELD_BYTES, ImageTooLargeError, type SinkMemory } from './block-sink.ts';
import { wipeImage, writeRegions } from './device-regions.ts';
import type { Qcow2Header } from './formats.ts';
import type { ImageTarget } from './image-target.ts';
import { convertStagedQcow2, stagingOffsetFor } from './qcow2.ts';

/**
 * The two ways an image reaches the disk. Both take the decoded stream, report the digest
 * of the bytes they wrote, make the disk bootable only in commit() (after verification) and
 * leave no partition table behind in abort().
 */
export interface ImageWriter {
  /** Memory a source may read the stream into directly (raw images only). */
  readonly memory?: SinkMemory;
  write(chunk: Buffer): Promise<void>;
  /** Everything but the held regions is on the disk. */
  finish(): Promise<{ bytes: number; digest: string | undefined }>;
  /** Makes the image whole; `check` sees the first MiB before it is written. */
  commit(check: (head: Buffer) => Promise<void> | void): Promise<void>;
  abort(): Promise<void>;
  close(): Promise<void>;
}

export interface WriterContext {
  device: BlockDeviceInfo;
  target: ImageTarget;
  run: RunCommand;
  log: Logger;
  guard(): Promise<void>;
  /** Algorithm to hash the written bytes with (in a worker), if any. */
  hashAlgorithm: string | undefined;
  onWritten?(bytes: number): void;
}

/** raw (and gpt, iso): the bytes as they come, straight to the disk. */
export class RawWriter implements ImageWriter {
  private readonly sink: BlockSink;
  readonly memory: SinkMemory;

  private constructor(sink: BlockSink) {
    this.sink = sink;
    this.memory = sink.memoryForSource;
  }

  static async open(ctx: WriterContext, expectedSize: number | undefined): Promise<RawWriter> {
    const { target } = ctx;
    const sink = await BlockSink.open({
      device: ctx.device, run: ctx.run, log: ctx.log, guard: ctx.guard,
      baseOffset: target.offset, limit: target.offset + target.size, wipeFirst: target.ownsTables,
      holdBack: true, expectedSize, hashAlgorithm: ctx.hashAlgorithm, zeroSkip: true, onProgress: ctx.onWritten,
    });
    return new RawWriter(sink);
  }

  write(chunk: Buffer): Promise<void> {
    return this.sink.write(chunk);
  }

  finish() {
    return this.sink.finish();
  }

  async commit(check: (head: Buffer) => Promise<void> | void): Promise<void> {
    await check(this.sink.heldHead);
    await this.sink.commit();
  }

  abort(): Promise<void> {
    return this.sink.wipe();
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

/** qcow2: staged on the target past the virtual disk, converted by qemu-img after verification. */
export class Qcow2Writer implements ImageWriter {
  private readonly ctx: WriterContext;
  private readonly header: Qcow2Header;
  private readonly stagingOffset: number;
  private sink: BlockSink | undefined;
  private stagedSize = 0;
  private onConvertProgress: ((fraction: number) => void) | undefined;

  private constructor(ctx: WriterContext, header: Qcow2Header, sink: BlockSink, stagingOffset: number) {
    this.ctx = ctx;
    this.header = header;
    this.sink = sink;
    this.stagingOffset = stagingOffset;
  }

  static async open(ctx: WriterContext, header: Qcow2Header, fileSize: number | undefined, onConvertProgress?: (f: number) => void): Promise<Qcow2Writer> {
    const v = header.virtualSize;
    const { target } = ctx;
    if (v > target.size) {
      throw new ImageTooLargeError(`the image's virtual size (${v} bytes) is larger than the space on ${ctx.device.path} (${target.size} bytes)`);
    }
    const stagingOffset = target.offset + stagingOffsetFor(v);
    if (fileSize !== undefined && stagingOffset + fileSize > target.stagingEnd) {
      throw new ImageTooLargeError(stagingMessage(ctx.device, v, fileSize));
    }
    const sink = await BlockSink.open({
      device: ctx.device, run: ctx.run, log: ctx.log, guard: ctx.guard,
      baseOffset: stagingOffset, limit: target.stagingEnd, holdBack: false, wipeFirst: target.ownsTables, expectedSize: fileSize,
      hashAlgorithm: ctx.hashAlgorithm, zeroSkip: true, onProgress: ctx.onWritten,
    }).catch((err: unknown) => {
      if (err instanceof ImageTooLargeError) throw new ImageTooLargeError(stagingMessage(ctx.device, v, fileSize));
      throw err;
    });
    const writer = new Qcow2Writer(ctx, header, sink, stagingOffset);
    writer.onConvertProgress = onConvertProgress;
    return writer;
  }

  async write(chunk: Buffer): Promise<void> {
    try {
      await this.sink!.write(chunk);
    } catch (err) {
      if (err instanceof ImageTooLargeError) throw new ImageTooLargeError(stagingMessage(this.ctx.device, this.header.virtualSize, undefined));
      throw err;
    }
  }

  async finish() {
    const result = await this.sink!.finish();
    this.stagedSize = result.bytes;
    // Nothing else writes while qemu-img works on the device.
    await this.sink!.close();
    this.sink = undefined;
    return result;
  }

  async commit(check: (head: Buffer) => Promise<void> | void): Promise<void> {
    await this.ctx.guard();
    this.ctx.log.info(
      { device: this.ctx.device.path, virtualSize: this.header.virtualSize, staged: this.stagedSize, at: this.stagingOffset },
      'qcow2 image verified; converting it in place with qemu-img',
    );
    const base = this.ctx.target.offset;
    const { head, tail } = await convertStagedQcow2(
      { device: this.ctx.device, targetOffset: base, virtualSize: this.header.virtualSize, stagingOffset: this.stagingOffset, stagedSize: this.stagedSize },
      { log: this.ctx.log, onProgress: this.onConvertProgress },
    );
    await check(head);
    await this.ctx.guard();
    await writeRegions(this.ctx.device, [{ offset: base + tail.offset, data: tail.data }, { offset: base, data: head }]);
    // The staged file is garbage now; give thin or trimmed storage its space back.
    await punchHole(this.ctx.run, this.ctx.device.path, this.stagingOffset, alignUp(this.stagedSize, this.ctx.device.logicalBlockSize));
  }

  async abort(): Promise<void> {
    await this.sink?.close();
    this.sink = undefined;
    await wipeImage(this.ctx.device, this.ctx.target, Math.max(this.header.virtualSize, HELD_BYTES), this.ctx.log);
  }

  async close(): Promise<void> {
    await this.sink?.close();
    this.sink = undefined;
  }
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

function stagingMessage(device: BlockDeviceInfo, virtualSize: number, fileSize: number | undefined): string {
  return `a qcow2 image is staged on the target after its virtual disk (${virtualSize} bytes) before conversion; ` +
    `${device.path} (${device.size} bytes) has no room for the qcow2 file${fileSize === undefined ? '' : ` (${fileSize} bytes)`}`;
}
