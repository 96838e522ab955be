import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ReceiveRing, type ConsumerMemory } from './receive-ring.ts';

/**
 * One HTTP/1.1 GET for image bytes, read without garbage into a ReceiveRing (receive-ring.ts).
 * It does what an image download needs and no more: a direct connection (HTTP or HTTPS),
 * a response head, a body framed by Content-Length, chunked encoding or the connection's
 * end. Redirects and proxies are the caller's (http-source.ts), so are status codes.
 */
export interface GetOptions {
  headers: Record<string, string>;
  /** Connect and read-idle timeout, milliseconds. */
  timeoutMs: number;
  tls: { rejectUnauthorized: boolean; ca?: string };
  signal?: AbortSignal | undefined;
}

export interface GetResponse {
  statusCode: number;
  headers: Record<string, string | string[]>;
  body: GetBody;
}

/** The body: borrowed views (valid until the next read), or all of it as text. */
export interface GetBody extends AsyncIterable<Buffer> {
  text(): Promise<string>;
  destroy(): void;
  /**
   * Reads the rest of the body into the consumer's memory (ReceiveRing.redirect); `streamOffset`
   * is where the body's first byte belongs. False when the framing does not allow it (chunked).
   */
  readInto(memory: ConsumerMemory, streamOffset: number): boolean;
}

const MAX_HEAD_BYTES = 64 * 1024;

export class HttpProtocolError extends Error {
  override name = 'HttpProtocolError';
}

export function httpGet(url: URL, opts: GetOptions): Promise<GetResponse> {
  const head = requestHead(url, opts.headers);
  return new Promise((resolve, reject) => {
    const ring = new ReceiveRing();
    const parser = new ResponseParser(ring);
    const https = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (https ? 443 : 80));
    const onread = {
      buffer: ring.target,
      callback: (nread: number) => {
        const more = ring.received(nread, (bytes) => {
          try {
            parser.feed(bytes);
          } catch (err) {
            socket.destroy(err as Error);
          }
        });
        // Paused for a slow consumer (a busy disk) is not a silent server.
        if (!more) socket.setTimeout(0);
        return more;
      },
    };
    const socket: Socket = https
      ? // tls.connect takes onread as net.connect does; @types/node does not say so.
        tlsConnect({ host, port, servername: isIP(host) ? undefined : host, ...opts.tls, ...({ onread } as object) })
      : netConnect({ host, port, onread });
    ring.attach(() => {
      socket.setTimeout(opts.timeoutMs);
      socket.resume();
    });
    socket.setTimeout(opts.timeoutMs);
    socket.on('timeout', () =>
      socket.destroy(Object.assign(new Error(`no data from ${url.host} for ${opts.timeoutMs / 1000} seconds`), { code: 'ETIMEDOUT' })),
    );
    const abort = () => socket.destroy(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    if (opts.signal?.aborted) abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    socket.once(https ? 'secureConnect' : 'connect', () => socket.write(head));
    socket.on('end', () => {
      try {
        parser.finish();
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('close', () => {
      opts.signal?.removeEventListener('abort', abort);
      parser.finish(new Error(`the connection to ${url.host} closed`));
    });
    socket.on('error', (err) => {
      parser.fail(err);
      reject(err);
    });
    parser.onHead = (statusCode, headers) => {
      const body: GetBody = {
        [Symbol.asyncIterator]: () => {
          const it: AsyncIterator<Buffer> = {
            next: () => ring.next(),
            return: async () => {
              socket.destroy();
              return ring.return();
            },
          };
          return it;
        },
        text: async () => {
          const parts: Buffer[] = [];
          for await (const view of body) parts.push(Buffer.from(view));
          return Buffer.concat(parts).toString('utf8');
        },
        destroy: () => void socket.destroy(),
        readInto: (memory, streamOffset) => {
          if (parser.chunked) return false;
          ring.redirect(memory, streamOffset);
          return true;
        },
      };
      parser.onDone = () => socket.destroy();
      resolve({ statusCode, headers, body });
    };
  });
}

function requestHead(url: URL, headers: Record<string, string>): string {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close', 'Accept-Encoding: identity'];
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new HttpProtocolError(`invalid header ${name}`);
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

type Framing = { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' };

/** The response, byte by byte as it arrives: head, then body pieces pushed to the ring. */
class ResponseParser {
  onHead: ((status: number, headers: Record<string, string | string[]>) => void) | undefined;
  onDone: (() => void) | undefined;
  private readonly ring: ReceiveRing;
  private head: Buffer | undefined = Buffer.alloc(0);
  private framing: Framing = { kind: 'close' };

  get chunked(): boolean {
    return this.framing.kind === 'chunked';
  }
  private chunk = new ChunkedDecoder();
  private done = false;

  constructor(ring: ReceiveRing) {
    this.ring = ring;
  }

  feed(bytes: Buffer): void {
    if (this.done) return;
    if (this.head) {
      const joined = Buffer.concat([this.head, bytes]);
      const end = joined.indexOf('\r\n\r\n');
      if (end < 0) {
        if (joined.length > MAX_HEAD_BYTES) throw new HttpProtocolError('response head larger than 64 KiB');
        this.head = joined;
        return;
      }
      const rest = bytes.subarray(end + 4 - this.head.length);
      this.head = undefined;
      const { status, headers } = parseHead(joined.subarray(0, end).toString('latin1'));
      this.framing = framingOf(headers);
      this.onHead?.(status, headers);
      this.body(rest);
      if (this.framing.kind === 'length' && this.framing.remaining === 0) this.complete();
      return;
    }
    this.body(bytes);
  }

  /** The connection ended (cleanly with no error, or `err`). */
  finish(err?: Error): void {
    if (this.done) return;
    if (this.head) {
      this.fail(err ?? new HttpProtocolError('the connection closed before a response'));
      return;
    }
    const f = this.framing;
    // Without a declared length the end of the connection is the end of the body.
    if (f.kind === 'close' && !err) this.complete();
    else if (f.kind === 'length') this.fail(err ?? new HttpProtocolError(`the connection closed with ${f.remaining} bytes of the body missing`));
    else this.fail(err ?? new HttpProtocolError('the connection closed in the middle of a chunked body'));
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.ring.fail(err);
  }

  private body(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const f = this.framing;
    if (f.kind === 'close') {
      this.ring.push(bytes);
    } else if (f.kind === 'length') {
      const take = Math.min(bytes.length, f.remaining);
      this.ring.push(bytes.subarray(0, take));
      f.remaining -= take;
      if (f.remaining === 0) this.complete();
    } else if (this.chunk.feed(bytes, (piece) => this.ring.push(piece))) {
      this.complete();
    }
  }

  private complete(): void {
    if (this.done) return;
    this.done = true;
    this.ring.end();
    this.onDone?.();
  }
}

function parseHead(text: string): { status: number; headers: Record<string, string | string[]> } {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
  if (!m) throw new HttpProtocolError(`not an HTTP/1.x response: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers: Record<string, string | string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpProtocolError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prior = headers[name];
    headers[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return { status: Number(m[1]), headers };
}

function framingOf(headers: Record<string, string | string[]>): Framing {
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    if (/(^|,)\s*chunked\s*$/i.test(String(te))) return { kind: 'chunked' };
    throw new HttpProtocolError(`unsupported Transfer-Encoding: ${String(te)}`);
  }
  const cl = headers['content-length'];
  if (cl === undefined) return { kind: 'close' };
  const values = new Set((Array.isArray(cl) ? cl : [cl]).flatMap((v) => v.split(',')).map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^\d+$/.test(only)) throw new HttpProtocolError(`invalid Content-Length: ${String(cl)}`);
  return { kind: 'length', remaining: Number(only) };
}

/** RFC 9112 §7.1 chunked transfer coding: data pieces out, sizes, extensions and trailers dropped. */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;

  /** Feeds bytes; `piece` gets views of chunk data. True once the last chunk and trailers are in. */
  feed(bytes: Buffer, piece: (data: Buffer) => void): boolean {
    let at = 0;
    while (at < bytes.length && this.state !== 'done') {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, bytes.length - at);
        piece(bytes.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      const nl = bytes.indexOf(0x0a, at);
      const end = nl < 0 ? bytes.length : nl + 1;
      this.line += bytes.toString('latin1', at, end);
      at = end;
      if (this.line.length > 4096) throw new HttpProtocolError('chunked encoding: line too long');
      if (nl < 0) continue;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
        if (!m) throw new HttpProtocolError(`chunked encoding: bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(m[1]!, 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
      } else if (this.state === 'data-end') {
        if (line !== '') throw new HttpProtocolError('chunked encoding: chunk data longer than its size');
        this.state = 'size';
      } else if (line === '') {
        this.state = 'done';
      }
    }
    return this.state === 'done';
  }
}
