/**
 * Socket reads without garbage: the kernel copies received bytes straight into a few fixed
 * blocks of memory (net.Socket's `onread`), and the consumer gets views of them. undici and
 * node:http allocate a new buffer per read instead; at image speed that is a GiB of garbage
 * per GiB received, which the collector frees late (peak RSS over 200 MiB) and which costs
 * a copy on the way (DESIGN.md "The image data path": memory flat whatever the image size).
 *
 * A view handed out by next() stays valid until the following next() call (or return());
 * a consumer that keeps bytes longer copies them. Reading pauses while every block holds
 * bytes the consumer has not released, so memory is the blocks whatever the image size.
 */
const BLOCK_BYTES = 256 * 1024;
const BLOCK_COUNT = 4;
/** A read into less room than this moves on to the next block. */
const MIN_READ = 32 * 1024;

interface Held {
  view: Buffer;
  /** The ring block it lies in, or -1 for the consumer's own memory (redirect()). */
  block: number;
}

/** The consumer's memory for body bytes, by stream offset (BlockSink's SinkMemory). */
export interface ConsumerMemory {
  where(offset: number): Buffer;
  ready(offset: number): true | Promise<void>;
}

export class ReceiveRing implements AsyncIterator<Buffer> {
  private readonly blocks: Buffer[];
  private readonly holds: number[];
  private block = 0;
  private offset = 0;
  private readonly queue: Held[] = [];
  private lent: Held | undefined;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** The socket waits for this block to be released before it reads again. */
  private waitingFor: number | undefined;
  private resumeReading: () => void = () => undefined;
  /** Once redirected: the consumer's memory, and the stream offset of this connection's first body byte. */
  private consumer: ConsumerMemory | undefined;
  private bodyBase = 0;
  private pushed = 0;
  private bodyStarted = false;
  private target_: Buffer | undefined;
  /** The block the last read went into, or -1 for the consumer's memory. */
  private reading = 0;

  constructor() {
    const memory = Buffer.allocUnsafeSlow(BLOCK_BYTES * BLOCK_COUNT);
    this.blocks = Array.from({ length: BLOCK_COUNT }, (_, i) => memory.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
    this.holds = new Array<number>(BLOCK_COUNT).fill(0);
  }

  /** Where the next socket read lands (net.Socket onread.buffer). */
  readonly target = (): Buffer => this.target_ ?? this.blocks[this.block]!.subarray(this.offset);

  /**
   * From now on, body bytes are read straight into the consumer's memory: `streamOffset` is
   * the stream position of this connection's first body byte. Only for bodies whose bytes on
   * the wire are the stream (no chunked framing): the caller knows.
   */
  redirect(memory: ConsumerMemory, streamOffset: number): void {
    this.bodyBase = streamOffset;
    this.consumer = memory;
  }

  /** Called once the socket exists: how to resume it after a pause. */
  attach(resume: () => void): void {
    this.resumeReading = resume;
  }

  /**
   * Accounts for `length` bytes the socket read into target(); `deliver` is called with the
   * received bytes and hands body bytes (views of them) to push(). Returns false when the
   * socket must pause until the consumer releases a block.
   */
  received(length: number, deliver: (bytes: Buffer) => void): boolean {
    const inConsumer = this.target_ !== undefined;
    const bytes = inConsumer ? this.target_!.subarray(0, length) : this.blocks[this.block]!.subarray(this.offset, this.offset + length);
    this.reading = inConsumer ? -1 : this.block;
    deliver(bytes);
    if (!inConsumer) this.offset += length;
    return this.nextTarget();
  }

  /** A piece of the body: a view of the memory just read into. */
  push(view: Buffer): void {
    if (view.length === 0) return;
    this.bodyStarted = true;
    this.pushed += view.length;
    if (this.reading >= 0) this.holds[this.reading]!++;
    this.queue.push({ view, block: this.reading });
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.notify();
  }

  async next(): Promise<IteratorResult<Buffer>> {
    this.release();
    for (;;) {
      const held = this.queue.shift();
      if (held) {
        this.lent = held;
        return { value: held.view, done: false };
      }
      if (this.failure) throw this.failure;
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<Buffer>> {
    this.release();
    this.ended = true;
    return { value: undefined, done: true };
  }

  private release(): void {
    const lent = this.lent;
    if (!lent) return;
    this.lent = undefined;
    if (lent.block < 0) return;
    this.holds[lent.block]!--;
    if (this.waitingFor === lent.block && this.holds[lent.block] === 0) {
      this.waitingFor = undefined;
      this.resumeReading();
    }
  }

  /**
   * Names the memory of the next read. Node asks for it right after each read, paused or not,
   * so the memory is named even when it is not free yet: false pauses the socket until it is.
   */
  private nextTarget(): boolean {
    const c = this.consumer;
    // Redirected once the body has begun (the response head never lands in the consumer's memory).
    if (!c || !this.bodyStarted) {
      this.target_ = undefined;
      return this.advance();
    }
    const next = this.bodyBase + this.pushed;
    this.target_ = c.where(next);
    const ready = c.ready(next);
    if (ready === true) return true;
    void this.waitFor(ready, next);
    return false;
  }

  private async waitFor(ready: Promise<void>, offset: number): Promise<void> {
    for (;;) {
      await ready;
      if (this.ended || this.failure) return;
      const again = this.consumer!.ready(offset);
      if (again === true) break;
      ready = again;
    }
    this.resumeReading();
  }

  /**
   * Moves to the next block when this one is nearly full. Node asks for the next read's
   * buffer right after each read, paused or not, so the next block is named even while the
   * consumer still holds it: false pauses the socket until release() frees that block.
   */
  private advance(): boolean {
    if (BLOCK_BYTES - this.offset >= MIN_READ) return true;
    this.block = (this.block + 1) % BLOCK_COUNT;
    this.offset = 0;
    if (this.holds[this.block]! === 0) return true;
    this.waitingFor = this.block;
    return false;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
