/**
 * A walker over the frame structure of a zstd stream (RFC 8878 §3.1), without decompressing:
 * it finds where each frame ends so that every frame gets its own decoder (node:zlib's
 * decoder stops after one frame), skips skippable frames, and refuses what follows the last
 * frame unless it is another frame: trailing garbage or a cut-off frame is an error, never a
 * silently shorter image.
 */
export interface FrameSegment {
  bytes: Buffer;
  /** The last bytes of a frame. */
  end: boolean;
}

const ZSTD_MAGIC = 0xfd2fb528;
const isSkippable = (magic: number) => (magic & 0xfffffff0) === 0x184d2a50;
const IN_FRAME = new Set(['descriptor', 'header-rest', 'block-header', 'block-body', 'checksum']);

type State =
  | { kind: 'magic' }
  | { kind: 'descriptor' }
  | { kind: 'header-rest'; length: number }
  | { kind: 'block-header' }
  | { kind: 'block-body'; remaining: number; last: boolean }
  | { kind: 'checksum' }
  | { kind: 'skip-size' }
  | { kind: 'skip-body'; remaining: number };

export class ZstdFrameError extends Error {
  override name = 'ZstdFrameError';
}

export class ZstdFrameSplitter {
  /** Frame_Content_Size of the first frame, when its header declares one. */
  firstFrameContentSize: number | undefined;
  private state: State = { kind: 'magic' };
  private field = Buffer.alloc(16);
  private fieldFill = 0;
  private frames = 0;
  private checksumFlag = false;
  private descriptor = 0;
  private offset = 0;

  /** Splits `chunk` into pieces of zstd frames (skippable frames are dropped). */
  feed(chunk: Buffer): FrameSegment[] {
    const out: FrameSegment[] = [];
    let segStart = 0;
    let i = 0;
    while (i < chunk.length) {
      const s = this.state;
      switch (s.kind) {
        case 'magic': {
          i += this.take(chunk, i, 4);
          if (this.fieldFill < 4) break;
          const magic = this.field.readUInt32LE(0);
          this.fieldFill = 0;
          if (magic === ZSTD_MAGIC) {
            // The magic may have begun in the previous chunk: hand it on as a copy.
            out.push({ bytes: Buffer.from(this.field.subarray(0, 4)), end: false });
            segStart = i;
            this.state = { kind: 'descriptor' };
          } else if (isSkippable(magic)) {
            this.state = { kind: 'skip-size' };
          } else {
            throw new ZstdFrameError(
              this.frames === 0
                ? 'not a zstd stream'
                : `unexpected data after zstd frame ${this.frames}, at byte ${this.offset + i - 4} of the stream (trailing garbage)`,
            );
          }
          break;
        }
        case 'descriptor': {
          this.descriptor = chunk[i]!;
          i++;
          if (this.descriptor & 0x08) throw new ZstdFrameError('invalid zstd frame header (reserved bit set)');
          const singleSegment = (this.descriptor >> 5) & 1;
          const didBytes = [0, 1, 2, 4][this.descriptor & 3]!;
          const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][this.descriptor >> 6]!;
          this.checksumFlag = ((this.descriptor >> 2) & 1) === 1;
          const length = (singleSegment ? 0 : 1) + didBytes + fcsBytes;
          this.state = length > 0 ? { kind: 'header-rest', length } : { kind: 'block-header' };
          break;
        }
        case 'header-rest': {
          i += this.take(chunk, i, s.length);
          if (this.fieldFill < s.length) break;
          if (this.frames === 0) this.firstFrameContentSize = this.contentSize(s.length);
          this.fieldFill = 0;
          this.state = { kind: 'block-header' };
          break;
        }
        case 'block-header': {
          i += this.take(chunk, i, 3);
          if (this.fieldFill < 3) break;
          const h = this.field.readUIntLE(0, 3);
          this.fieldFill = 0;
          const last = (h & 1) === 1;
          const type = (h >> 1) & 3;
          if (type === 3) throw new ZstdFrameError('invalid zstd block type');
          const remaining = type === 1 ? 1 : h >>> 3;
          this.state = remaining > 0 ? { kind: 'block-body', remaining, last } : this.afterBlock(last);
          break;
        }
        case 'block-body': {
          const n = Math.min(s.remaining, chunk.length - i);
          i += n;
          s.remaining -= n;
          if (s.remaining === 0) this.state = this.afterBlock(s.last);
          break;
        }
        case 'checksum': {
          i += this.take(chunk, i, 4);
          if (this.fieldFill < 4) break;
          this.fieldFill = 0;
          this.state = { kind: 'magic' };
          break;
        }
        case 'skip-size': {
          i += this.take(chunk, i, 4);
          if (this.fieldFill < 4) break;
          const remaining = this.field.readUInt32LE(0);
          this.fieldFill = 0;
          this.state = remaining > 0 ? { kind: 'skip-body', remaining } : { kind: 'magic' };
          break;
        }
        case 'skip-body': {
          const n = Math.min(s.remaining, chunk.length - i);
          i += n;
          s.remaining -= n;
          if (s.remaining === 0) this.state = { kind: 'magic' };
          break;
        }
      }
      if (this.state.kind === 'magic' && IN_FRAME.has(s.kind)) {
        this.frames++;
        out.push({ bytes: chunk.subarray(segStart, i), end: true });
        segStart = i;
      }
    }
    if (IN_FRAME.has(this.state.kind) && i > segStart) out.push({ bytes: chunk.subarray(segStart, i), end: false });
    this.offset += chunk.length;
    return out;
  }

  /** Throws unless the stream ended between frames. */
  finish(): void {
    if (this.state.kind !== 'magic' || this.fieldFill > 0) {
      throw new ZstdFrameError(`the zstd stream is truncated (it ends inside frame ${this.frames + 1})`);
    }
    if (this.frames === 0) throw new ZstdFrameError('the zstd stream contains no frame');
  }

  private afterBlock(last: boolean): State {
    if (!last) return { kind: 'block-header' };
    return this.checksumFlag ? { kind: 'checksum' } : { kind: 'magic' };
  }

  /** Copies up to what a small field still needs; returns the bytes taken. */
  private take(chunk: Buffer, at: number, need: number): number {
    const n = Math.min(need - this.fieldFill, chunk.length - at);
    chunk.copy(this.field, this.fieldFill, at, at + n);
    this.fieldFill += n;
    return n;
  }

  private contentSize(length: number): number | undefined {
    const singleSegment = (this.descriptor >> 5) & 1;
    const fcsFlag = this.descriptor >> 6;
    const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
    if (fcsBytes === 0) return undefined;
    const at = length - fcsBytes;
    if (fcsBytes === 1) return this.field[at]!;
    if (fcsBytes === 2) return this.field.readUInt16LE(at) + 256;
    if (fcsBytes === 4) return this.field.readUInt32LE(at);
    return Number(this.field.readBigUInt64LE(at));
  }
}
