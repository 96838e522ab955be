import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Incremental hashing of the image while it streams (spec §9.3: never read the image twice).
 * Two kinds: `InlineHasher` hashes Buffers on the event loop; `SharedMemoryHasher` hashes
 * ranges of the sink's shared aligned memory in a worker thread, so that SHA-256/512 (the
 * most expensive stage, about 1.9/0.9 GB/s per core here) runs beside receiving and writing
 * instead of between them (DESIGN.md "Stages overlap").
 */
export interface Hasher {
  readonly algorithm: string;
  /** Hex digest of everything hashed so far; the hasher is finished afterwards. */
  digest(): Promise<string>;
  close(): void;
}

export class InlineHasher implements Hasher {
  readonly algorithm: string;
  private readonly hash: Hash;

  constructor(algorithm: string) {
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  async digest(): Promise<string> {
    return this.hash.digest('hex');
  }

  close(): void {}
}

/**
 * The worker's code, as a string: the agent ships as one bundled file in the ramdisk, so the
 * worker cannot be a separate module. Messages are processed in order; each update is
 * acknowledged so the sink knows when a buffer may be reused.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const memory = new Uint8Array(workerData.memory);
const hash = createHash(workerData.algorithm);
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      hash.update(memory.subarray(m.offset, m.offset + m.length));
      parentPort.postMessage({ id: m.id });
    } else if (m.op === 'digest') {
      parentPort.postMessage({ id: m.id, digest: hash.digest('hex') });
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

interface Pending {
  resolve(value: string | undefined): void;
  reject(err: Error): void;
}

export class SharedMemoryHasher implements Hasher {
  readonly algorithm: string;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(memory: SharedArrayBuffer, algorithm: string) {
    this.algorithm = algorithm;
    // Fail fast on an unknown algorithm here rather than inside the worker.
    createHash(algorithm);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { memory, algorithm } });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; digest?: string; error?: string }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(`hashing failed: ${m.error}`));
      else p?.resolve(m.digest);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
  }

  /** Hashes `length` bytes of the shared memory at `offset`; resolves when done. */
  update(offset: number, length: number): Promise<void> {
    return this.call({ op: 'update', offset, length }).then(() => undefined);
  }

  async digest(): Promise<string> {
    return (await this.call({ op: 'digest' }))!;
  }

  /** Stops the worker; resolves once it no longer reads the memory. */
  async close(): Promise<void> {
    this.failure ??= new Error('hasher closed');
    await this.worker.terminate();
  }

  private call(message: Record<string, unknown>): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}
