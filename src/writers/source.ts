import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { blockDeviceInfo } from './block-device.ts';
import type { ConsumerMemory } from './receive-ring.ts';

/**
 * Where image bytes come from: a stream of chunks in order, with the total size when it is
 * known up front (Content-Length, file size), so that an image that cannot fit is refused
 * before a byte is written. Chunks are borrowed: one is valid until the next is asked for
 * (HttpSource reads into fixed memory); whoever keeps bytes longer copies them.
 */
export interface ImageSource extends AsyncIterable<Buffer> {
  readonly description: string;
  readonly size: number | undefined;
  close(): Promise<void>;
  /** Read the bytes still to come straight into the sink's memory, where the source can. */
  readInto?(memory: ConsumerMemory): void;
}

/** A local file or block device (the CLI's `write-image FILE`, `file://` URLs). */
export class FileSource implements ImageSource {
  readonly description: string;
  readonly size: number;
  private readonly path: string;
  private stream: ReturnType<typeof createReadStream> | undefined;

  private constructor(path: string, size: number) {
    this.path = path;
    this.description = path;
    this.size = size;
  }

  static async open(pathOrUrl: string): Promise<FileSource> {
    const path = pathOrUrl.startsWith('file:') ? fileURLToPath(pathOrUrl) : pathOrUrl;
    const handle = await open(path, 'r');
    try {
      const stat = await handle.stat();
      const size = stat.isBlockDevice() ? (await blockDeviceInfo(path)).size : stat.size;
      if (!stat.isFile() && !stat.isBlockDevice()) throw new Error(`${path} is not a regular file or block device`);
      return new FileSource(path, size);
    } finally {
      await handle.close();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.stream = createReadStream(this.path, { highWaterMark: 1 << 20 });
    return this.stream[Symbol.asyncIterator]();
  }

  async close(): Promise<void> {
    this.stream?.destroy();
  }
}
