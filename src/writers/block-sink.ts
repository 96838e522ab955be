import { constants, type promises as fsp } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';
import { sinkMemoryPool, type AlignedLease } from './aligned-memory.ts';
import { punchHole, type BlockDeviceInfo } from './block-device.ts';
import { SharedMemoryHasher } from './hasher.ts';

export const MiB = 1 << 20;
/** The first and the last MiB of an image are held back until every checksum matched (DESIGN.md). */
export const HELD_BYTES = MiB;
/**
 * O_DIRECT buffers: large and page aligned (spec/packages.md: 4 MiB, a few in flight). Three:
 * one filling, one waiting for the next (the lagging one, see slotFull()), one being hashed
 * and written. Measured on the bench's 2 GiB writes (raw, zstd, gzip, alternating runs), five
 * were no faster within the noise of this shared machine and cost 8 MiB more peak RSS.
 */
const SLOT_BYTES = 4 * MiB;
const DEFAULT_SLOTS = 3;
const ALIGN = 4096;
/**
 * Zero-skip: all-zero buffers are held back as a run; a run this long is zeroed by the
 * device without writing (one fallocate for many MiB), a shorter one is written.
 */
const ZERO_RUN_MIN = 64 * MiB;
const ZERO_WRITE = MiB;

const alignDown = (n: number, a: number) => Math.floor(n / a) * a;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** The image does not fit: found before writing a byte when the size is known. */
export class ImageTooLargeError extends Error {
  override name = 'ImageTooLargeError';
}

/** The device refused a write or a flush (I/O error, disappeared, shrank). */
export class DeviceWriteError extends Error {
  override name = 'DeviceWriteError';
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

export interface BlockSinkOptions {
  device: BlockDeviceInfo;
  run: RunCommand;
  log: Logger;
  /** The disk guard, asked again right before anything is made bootable. */
  guard(): Promise<void>;
  /** Device offset of the stream's byte 0 (a partition image's root, a staged qcow2). */
  baseOffset?: number;
  /** Device offset the stream must not pass (default: the device's end). */
  limit?: number;
  /** Hold the stream's first and last MiB back until commit(). */
  holdBack: boolean;
  /**
   * Zero the device's first and last MiB (its partition tables) before anything else, and
   * again in wipe() (default: holdBack). False when the tables are not the sink's to touch.
   */
  wipeFirst?: boolean;
  /** Bytes the stream will have, when known: refused at once if they cannot fit. */
  expectedSize?: number;
  /** Hash every byte written, in a worker thread, with this node:crypto algorithm. */
  hashAlgorithm?: string;
  /** Let the device zero long runs of all-zero buffers instead of writing them. */
  zeroSkip?: boolean;
  slots?: number;
  /** Called with the number of bytes accepted so far. */
  onProgress?(bytes: number): void;
}

interface Slot {
  index: number;
  buf: Buffer;
  /** Stream offset of buf[0]. */
  start: number;
  fill: number;
  busy: Promise<void> | undefined;
  /** Hashes and writes of this buffer not yet settled. */
  pending: number;
}

/**
 * Lets a source read stream bytes straight into the sink's buffers (ReceiveRing.redirect):
 * copying into shared memory runs at a quarter of memcpy's speed in V8, the kernel's own
 * copy into it costs nothing extra. Bytes at `where(offset)` that the sink is then given,
 * as that very view, are taken without a copy.
 */
export interface SinkMemory {
  /** The memory for stream bytes from `offset` to the end of their buffer. */
  where(offset: number): Buffer;
  /** True when that memory may be read into now; otherwise resolves when it may have become free. */
  ready(offset: number): true | Promise<void>;
}

export interface SinkResult {
  bytes: number;
  /** Digest of the bytes written (undefined without hashAlgorithm). */
  digest: string | undefined;
}

/**
 * The block device sink: copies the stream into page-aligned buffers and writes them with
 * O_DIRECT, several in flight, hashing each buffer in a worker meanwhile; memory is the
 * fixed set of buffers whatever the image size. With `holdBack`, the device's first and last
 * MiB are zeroed before anything else, the image's first MiB and its last MiB (where the
 * backup GPT lives) are kept in memory, and only commit() writes them: until then the disk
 * has no partition table and cannot boot (DESIGN.md "Never bootable until verified").
 */
export class BlockSink {
  private readonly opts: BlockSinkOptions;
  private readonly device: BlockDeviceInfo;
  private readonly base: number;
  private readonly limit: number;
  private readonly ownsTables: boolean;
  private readonly handle: fsp.FileHandle;
  private readonly slots: Slot[];
  private readonly head: Buffer;
  private readonly tail: Buffer;
  private readonly hasher: SharedMemoryHasher | undefined;
  private current: Slot;
  private lagging: Slot | undefined;
  private total = 0;
  private failure: Error | undefined;
  private tailStart: number | undefined;
  private zeroSkip: boolean;
  /** Stream range of consecutive all-zero buffers not yet written. */
  private zeroRun: [number, number] | undefined;
  private skippedBytes = 0;
  private readonly zeroes: Buffer;
  /** The zeroes view lies in reused memory: zero-filled the first time it is needed. */
  private zeroesFilled = false;
  private readonly memory: SharedArrayBuffer;
  private readonly lease: AlignedLease;
  private changed: (() => void)[] = [];
  private inPlace = 0;
  private closed = false;

  private constructor(opts: BlockSinkOptions, handle: fsp.FileHandle, lease: AlignedLease) {
    const memory = lease.memory;
    this.lease = lease;
    this.opts = opts;
    this.device = opts.device;
    this.base = opts.baseOffset ?? 0;
    this.limit = opts.limit ?? opts.device.size;
    this.ownsTables = opts.wipeFirst ?? opts.holdBack;
    this.handle = handle;
    this.zeroSkip = opts.zeroSkip === true && opts.device.writeZeroesMaxBytes > 0;
    const count = opts.slots ?? DEFAULT_SLOTS;
    this.slots = Array.from({ length: count }, (_, index) => ({
      index,
      buf: Buffer.from(memory, index * SLOT_BYTES, SLOT_BYTES),
      start: 0,
      fill: 0,
      busy: undefined,
      pending: 0,
    }));
    this.head = Buffer.from(memory, count * SLOT_BYTES, HELD_BYTES);
    this.tail = Buffer.from(memory, count * SLOT_BYTES + HELD_BYTES, HELD_BYTES + 2 * ALIGN);
    this.zeroes = Buffer.from(memory, count * SLOT_BYTES + 2 * HELD_BYTES + 2 * ALIGN, this.zeroSkip ? ZERO_WRITE : 0);
    this.hasher = opts.hashAlgorithm ? new SharedMemoryHasher(memory, opts.hashAlgorithm) : undefined;
    this.memory = memory;
    this.current = this.slots[0]!;
  }

  /** Opens the device for O_DIRECT writes; refuses an image known not to fit before writing a byte. */
  static async open(opts: BlockSinkOptions): Promise<BlockSink> {
    const base = opts.baseOffset ?? 0;
    const limit = opts.limit ?? opts.device.size;
    if (limit > opts.device.size || base > limit) {
      throw new Error(`the target range ${base}-${limit} is outside ${opts.device.path} (${opts.device.size} bytes)`);
    }
    if (opts.expectedSize !== undefined && base + opts.expectedSize > limit) {
      throw new ImageTooLargeError(
        `the image (${opts.expectedSize} bytes) is larger than the space on ${opts.device.path} (${limit - base} bytes)`,
      );
    }
    if (base % ALIGN !== 0 || limit % opts.device.logicalBlockSize !== 0 || SLOT_BYTES % opts.device.logicalBlockSize !== 0) {
      throw new Error(`unsupported alignment: offset ${base}, logical block size ${opts.device.logicalBlockSize}`);
    }
    await opts.guard();
    const count = opts.slots ?? DEFAULT_SLOTS;
    let handle: fsp.FileHandle;
    try {
      // O_EXCL on a block device: fails if it is mounted or claimed while we write.
      handle = await open(opts.device.path, constants.O_WRONLY | constants.O_DIRECT | constants.O_EXCL);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new DeviceWriteError(`cannot open ${opts.device.path} for writing: ${e.message}`, e.code);
    }
    const lease = sinkMemoryPool.acquire(count * SLOT_BYTES + 2 * HELD_BYTES + 2 * ALIGN + ZERO_WRITE);
    const sink = new BlockSink(opts, handle, lease);
    try {
      if (sink.ownsTables) await sink.zeroPartitionTables();
    } catch (err) {
      await sink.close();
      throw err;
    }
    return sink;
  }

  /** Bytes accepted so far. */
  get bytes(): number {
    return this.total;
  }

  /** Of those, the bytes a source read straight into place (SinkMemory). */
  get bytesReadInPlace(): number {
    return this.inPlace;
  }

  /** The image's first MiB (or all of a smaller image), as commit() will write it. */
  get heldHead(): Buffer {
    return this.head.subarray(0, Math.min(this.total, HELD_BYTES));
  }

  /** Copies `chunk` into the buffers; resolves when it may be reused, waiting while all buffers are busy. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.base + this.total + chunk.length > this.limit) {
      throw new ImageTooLargeError(`the image is larger than the space on ${this.device.path} (${this.limit - this.base} bytes)`);
    }
    let at = 0;
    while (at < chunk.length) {
      const slot = this.current;
      const n = Math.min(chunk.length - at, SLOT_BYTES - slot.fill);
      // Read into place by the source (SinkMemory): nothing to copy.
      const inPlace = chunk.buffer === this.memory && chunk.byteOffset + at === slot.buf.byteOffset + slot.fill;
      if (inPlace) this.inPlace += n;
      else chunk.copy(slot.buf, slot.fill, at, at + n);
      slot.fill += n;
      at += n;
      this.total += n;
      if (slot.fill === SLOT_BYTES) await this.slotFull();
    }
    this.opts.onProgress?.(this.total);
  }

  /** Where a source may read the stream's bytes to (see SinkMemory). */
  readonly memoryForSource: SinkMemory = {
    where: (offset) => {
      const slot = this.slots[Math.floor(offset / SLOT_BYTES) % this.slots.length]!;
      return slot.buf.subarray(offset % SLOT_BYTES);
    },
    ready: (offset) => {
      const start = offset - (offset % SLOT_BYTES);
      const cur = this.current;
      if (start === cur.start && offset >= cur.start + cur.fill) return true;
      // The next buffer, once its last round is hashed and written (slotFull() waits for the same).
      const next = this.slots[(cur.index + 1) % this.slots.length]!;
      if (start === cur.start + SLOT_BYTES && next !== this.lagging && next.pending === 0) return true;
      return new Promise((resolve) => this.changed.push(resolve));
    },
  };

  /** Writes everything but the held regions and waits for it; returns the size and written digest. */
  async finish(): Promise<SinkResult> {
    if (this.failure) throw this.failure;
    const n = this.total;
    const headEnd = Math.min(n, HELD_BYTES);
    this.tailStart = this.opts.holdBack ? Math.max(headEnd, alignDown(n - HELD_BYTES, ALIGN)) : n;
    const last = this.current;
    if (last.fill > 0) this.hashSlot(last);
    if (this.lagging) this.startWrite(this.lagging);
    if (last.fill > 0) this.startWrite(last);
    const zeroRun = this.flushZeroRun();
    await Promise.all([...this.slots.map((s) => s.busy), zeroRun]);
    if (this.failure) throw this.failure;
    const digest = await this.hasher?.digest();
    if (this.skippedBytes > 0) {
      this.opts.log.info({ device: this.device.path, skippedBytes: this.skippedBytes }, 'zero blocks skipped: the device zeroed them without writing');
    }
    return { bytes: n, digest };
  }

  /** Makes the image whole: the held last MiB, then the first MiB, then a flush. Only after verification. */
  async commit(): Promise<void> {
    if (this.tailStart === undefined) throw new Error('commit() before finish()');
    await this.opts.guard();
    const n = this.total;
    const tailLength = n - this.tailStart;
    if (tailLength > 0) await this.writePadded(this.tail, tailLength, this.tailStart);
    const headLength = Math.min(n, HELD_BYTES);
    if (headLength > 0) await this.writePadded(this.head, headLength, 0);
    await this.flush();
  }

  /**
   * Zeroes both partition-table areas of the image (or a partition image's superblocks) and,
   * when the tables are the sink's, the device's last MiB: never bootable.
   */
  async wipe(): Promise<void> {
    const zero = this.head.fill(0);
    const targets: [number, number][] = [[this.base, HELD_BYTES]];
    // The image's own last MiB holds its backup GPT once commit() ran.
    if (this.tailStart !== undefined && this.total > this.tailStart) {
      targets.push([this.base + this.tailStart, alignUp(this.total - this.tailStart, ALIGN)]);
    }
    if (this.ownsTables) targets.push([Math.max(0, this.device.size - HELD_BYTES), HELD_BYTES]);
    for (const [offset, length] of targets) {
      for (let at = 0; at < length; at += zero.length) {
        const len = Math.min(zero.length, length - at);
        const end = Math.min(offset + at + len, this.device.size);
        if (end <= offset + at) continue;
        await this.writeAll(zero, 0, end - (offset + at), offset + at).catch((err: Error) =>
          this.opts.log.warn({ device: this.device.path, offset: offset + at, err: err.message }, 'could not wipe a partition-table area'),
        );
      }
    }
    await this.flush().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.slots.map((s) => s.busy));
    await this.hasher?.close();
    await this.handle.close().catch(() => undefined);
    this.lease.release();
  }

  private async zeroPartitionTables(): Promise<void> {
    const zero = this.head.fill(0);
    const size = this.device.size;
    await this.writeAll(zero, 0, Math.min(HELD_BYTES, size), 0);
    if (size > HELD_BYTES) await this.writeAll(zero, 0, HELD_BYTES, size - HELD_BYTES);
    await this.flush();
  }

  private async slotFull(): Promise<void> {
    const full = this.current;
    this.hashSlot(full);
    // The previous buffer is written only now: nothing within the last MiB of the stream
    // reaches the disk before the end is known (then it is held back).
    if (this.lagging) this.startWrite(this.lagging);
    this.lagging = full;
    const next = this.slots[(full.index + 1) % this.slots.length]!;
    await next.busy;
    if (this.failure) throw this.failure;
    next.busy = undefined;
    next.start = full.start + SLOT_BYTES;
    next.fill = 0;
    this.current = next;
    this.notifyChanged();
  }

  private notifyChanged(): void {
    const waiting = this.changed;
    this.changed = [];
    for (const wake of waiting) wake();
  }

  private hashSlot(slot: Slot): void {
    if (!this.hasher) return;
    this.track(slot, this.hasher.update(slot.index * SLOT_BYTES, slot.fill));
  }

  private startWrite(slot: Slot): void {
    this.track(slot, this.writeSlot(slot));
  }

  private track(slot: Slot, work: Promise<void>): void {
    slot.pending++;
    const guarded = work
      .catch((err: Error) => {
        this.failure ??= err;
      })
      .finally(() => {
        slot.pending--;
        this.notifyChanged();
      });
    slot.busy = slot.busy ? Promise.all([slot.busy, guarded]).then(() => undefined) : guarded;
  }

  private async writeSlot(slot: Slot): Promise<void> {
    let from = slot.start;
    let to = slot.start + slot.fill;
    if (this.opts.holdBack && from < HELD_BYTES) {
      const end = Math.min(to, HELD_BYTES);
      slot.buf.copy(this.head, from, 0, end - from);
      from = end;
    }
    if (this.tailStart !== undefined && to > this.tailStart) {
      const keep = Math.max(from, this.tailStart);
      slot.buf.copy(this.tail, keep - this.tailStart, keep - slot.start, to - slot.start);
      to = keep;
    }
    if (to <= from) return;
    if (!this.opts.holdBack && to === this.total) {
      // The stream's end: O_DIRECT needs whole logical blocks, so pad with zeroes.
      const padded = alignUp(to - slot.start, this.device.logicalBlockSize);
      slot.buf.fill(0, to - slot.start, padded);
      to = slot.start + padded;
    }
    // Decided before the first await: buffers reach here in stream order.
    if (this.zeroSkip && isZero(slot.buf, from - slot.start, to - from)) {
      if (this.zeroRun?.[1] === from) this.zeroRun[1] = to;
      else {
        const earlier = this.flushZeroRun();
        this.zeroRun = [from, to];
        await earlier;
      }
      return;
    }
    const zeroRun = this.flushZeroRun();
    await this.writeAll(slot.buf, from - slot.start, to - from, this.base + from);
    await zeroRun;
  }

  /** Writes the held-back zero run: zeroed by the device when long, else written as zeroes. */
  private async flushZeroRun(): Promise<void> {
    const run = this.zeroRun;
    this.zeroRun = undefined;
    if (!run) return;
    const [from, to] = run;
    if (to - from >= ZERO_RUN_MIN && this.zeroSkip) {
      if (await punchHole(this.opts.run, this.device.path, this.base + from, to - from)) {
        this.skippedBytes += to - from;
        return;
      }
      this.zeroSkip = false;
      this.opts.log.info({ device: this.device.path }, 'the device cannot zero ranges without writing: writing every block');
    }
    if (!this.zeroesFilled) {
      this.zeroes.fill(0);
      this.zeroesFilled = true;
    }
    for (let at = from; at < to; at += ZERO_WRITE) {
      await this.writeAll(this.zeroes, 0, Math.min(ZERO_WRITE, to - at), this.base + at);
    }
  }

  private async writePadded(buf: Buffer, length: number, offset: number): Promise<void> {
    const padded = alignUp(length, this.device.logicalBlockSize);
    buf.fill(0, length, padded);
    await this.writeAll(buf, 0, padded, this.base + offset);
  }

  private async writeAll(buf: Buffer, offset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        ({ bytesWritten: n } = await this.handle.write(buf, offset + done, length - done, position + done));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new DeviceWriteError(`writing ${this.device.path} at offset ${position + done} failed: ${e.message}`, e.code);
      }
      if (n === 0) throw new DeviceWriteError(`writing ${this.device.path} at offset ${position + done} failed: no space left on the device`, 'ENOSPC');
      done += n;
    }
  }

  private async flush(): Promise<void> {
    try {
      await this.handle.sync();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new DeviceWriteError(`syncing data to ${this.device.path} failed: ${e.message}`, e.code);
    }
  }
}

const ZEROES = Buffer.alloc(SLOT_BYTES);
function isZero(buf: Buffer, offset: number, length: number): boolean {
  return buf.subarray(offset, offset + length).equals(ZEROES.subarray(0, length));
}
