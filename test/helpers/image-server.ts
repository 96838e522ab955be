import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What the next request for a path gets, instead of a clean 200/206. Faults are used up in
 * order, one per request; requests without a fault are served normally.
 */
export type Fault =
  /** Answer with this status (and a short body). */
  | { status: number; body?: string }
  /** Send the headers and `afterBytes` bytes of the body, then reset the connection. */
  | { cut: number }
  /** Send `afterBytes` bytes, then stop sending but keep the connection open. */
  | { stall: number }
  /** Ignore the Range header: answer 200 with the whole file. */
  | { ignoreRange: true }
  /** Answer a Range request as if the file had changed (new ETag): If-Range fails, 200 follows. */
  | { changeValidator: true };

export interface ServedFile {
  /** A file on disk, or bytes in memory. */
  path?: string;
  data?: Buffer;
  /** Require this Authorization header value (401 otherwise). */
  authorization?: string;
  /** Without a Content-Length (chunked). */
  chunked?: boolean;
}

export interface RecordedImageRequest {
  path: string;
  headers: IncomingMessage['headers'];
  status: number;
}

/**
 * An HTTP image server on 127.0.0.1 for tests: Range and If-Range as a real file server does
 * them (ETag and Last-Modified), HTTP Basic or token auth, and injected faults (cut, stall,
 * error status, no range support). Every request is recorded.
 */
export class ImageServer {
  readonly requests: RecordedImageRequest[] = [];
  private readonly files = new Map<string, ServedFile>();
  private readonly faults = new Map<string, Fault[]>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  url = '';

  serve(path: string, file: ServedFile): string {
    this.files.set(path, file);
    return `${this.url}${path}`;
  }

  /** Faults for the next requests of `path`, in order. */
  inject(path: string, ...faults: Fault[]): void {
    this.faults.set(path, [...(this.faults.get(path) ?? []), ...faults]);
  }

  requestsFor(path: string): RecordedImageRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    const record = (status: number) => this.requests.push({ path, headers: req.headers, status });
    const file = this.files.get(path);
    if (!file) {
      record(404);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (file.authorization && req.headers.authorization !== file.authorization) {
      record(401);
      res.writeHead(401, { 'www-authenticate': 'Basic realm="images"', 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    const fault = this.faults.get(path)?.shift();
    if (fault && 'status' in fault) {
      record(fault.status);
      res.writeHead(fault.status, { 'content-type': 'text/plain' }).end(fault.body ?? `injected ${fault.status}`);
      return;
    }
    const size = file.data ? file.data.length : statSync(file.path!).size;
    const etag = `"${createHash('sha1').update(`${file.path ?? 'mem'}:${size}`).digest('hex').slice(0, 16)}"`;
    const lastModified = new Date(1_700_000_000_000).toUTCString();
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const validatorOk = ifRange === undefined || ((!fault || !('changeValidator' in fault)) && (ifRange === etag || ifRange === lastModified));
    const useRange = range && validatorOk && !(fault && 'ignoreRange' in fault);
    const start = useRange ? Number(range[1]) : 0;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      etag: fault && 'changeValidator' in fault ? '"changed"' : etag,
      'last-modified': lastModified,
      'accept-ranges': 'bytes',
    };
    if (!file.chunked) headers['content-length'] = String(size - start);
    if (useRange) headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
    const status = useRange ? 206 : 200;
    record(status);
    res.writeHead(status, headers);
    const limit = fault && 'cut' in fault ? fault.cut : fault && 'stall' in fault ? fault.stall : undefined;
    let sent = 0;
    const body = file.data
      ? (async function* () {
          for (let at = start; at < size; at += 1 << 20) yield file.data!.subarray(at, Math.min(size, at + (1 << 20)));
        })()
      : createReadStream(file.path!, { start, highWaterMark: 1 << 20 });
    void (async () => {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          let piece = chunk;
          if (limit !== undefined && sent + piece.length >= limit) {
            piece = piece.subarray(0, Math.max(0, limit - sent));
            if (piece.length > 0) await write(res, piece);
            sent += piece.length;
            if ('cut' in fault!) {
              // Let the bytes reach the client, then reset the connection.
              setTimeout(() => req.socket.resetAndDestroy(), 50);
            }
            return; // a stall keeps the connection open and silent
          }
          sent += piece.length;
          if (!(await write(res, piece))) return;
        }
        res.end();
      } catch {
        res.destroy();
      }
    })();
  }
}

function write(res: ServerResponse, chunk: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    if (res.write(chunk)) resolve(true);
    else {
      const onDrain = () => {
        res.off('close', onClose);
        resolve(true);
      };
      const onClose = () => {
        res.off('drain', onDrain);
        resolve(false);
      };
      res.once('drain', onDrain);
      res.once('close', onClose);
    }
  });
}

/**
 * A forward HTTP proxy on 127.0.0.1 (absolute-URI GET, as python-requests and undici send
 * for http:// targets). Records what it forwarded.
 */
export class ForwardProxy {
  readonly forwarded: string[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const target = req.url ?? '';
      if (!/^http:\/\//.test(target)) {
        res.writeHead(400).end('absolute URI expected');
        return;
      }
      this.forwarded.push(target);
      const upstream = httpRequest(target, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
