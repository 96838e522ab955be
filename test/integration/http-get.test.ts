import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateAutoTlsCertificate } from '../../src/api/tls.ts';
import { realClock } from '../../src/clock.ts';
import { ChunkedDecoder, httpGet, type GetResponse } from '../../src/writers/http-get.ts';
import { HttpSource } from '../../src/writers/http-source.ts';
import { ForwardProxy } from '../helpers/image-server.ts';
import { memoryLogger } from '../helpers/logger.ts';

const MiB = 1 << 20;
const body = randomBytes(24 * MiB + 12345);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const tls = generateAutoTlsCertificate({ ip: '127.0.0.1', curve: 'p256', allowedClockSkewSeconds: 60, commonName: 'images' });

function handler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/chunked') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (let at = 0; at < body.length; at += 300_001) res.write(body.subarray(at, at + 300_001));
    res.end();
  } else if (req.url?.startsWith('/redirect/')) {
    // /redirect/<status>/<host:port>/<path>: to another host (or the same one) with that status.
    const [, , status, host, ...path] = req.url.split('/');
    res.writeHead(Number(status), { location: `http://${host}/${path.join('/')}` }).end();
  } else if (req.url === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.headers));
  } else {
    res.writeHead(200, { 'content-length': body.length }).end(body);
  }
}

async function listen(server: Server | NetServer): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Reads the body the way the image pipeline does: each view used before asking for the next. */
async function digestOf(response: GetResponse, delayEveryMiB = 0): Promise<{ digest: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  let nextPause = MiB;
  for await (const view of response.body) {
    h.update(view);
    bytes += view.length;
    if (delayEveryMiB > 0 && bytes >= nextPause) {
      nextPause += delayEveryMiB * MiB;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return { digest: h.digest('hex'), bytes };
}

const get = (url: string, opts: Partial<Parameters<typeof httpGet>[1]> = {}) =>
  httpGet(new URL(url), { headers: {}, timeoutMs: 5000, tls: { rejectUnauthorized: true }, ...opts });

describe('httpGet: image bytes into fixed memory', () => {
  const servers: (Server | NetServer)[] = [];
  let plain = '';
  let secure = '';
  let raw = '';
  let lastRaw = '';

  beforeAll(async () => {
    const http = createHttpServer(handler);
    const https = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, handler);
    // Hand-written responses: a body longer than its Content-Length, a cut body, a bad head.
    const net = createNetServer((socket) => {
      socket.once('data', (d) => {
        const path = /^GET (\S+)/.exec(d.toString())?.[1];
        lastRaw = d.toString();
        if (path === '/long') socket.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA');
        else if (path === '/cut') socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello');
        else if (path === '/cut-chunked') socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
        else if (path === '/close-delimited') socket.end('HTTP/1.0 200 OK\r\n\r\nuntil the end');
        else if (path === '/garbage') socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
        else if (path === '/silent') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel');
        else socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-Two: a\r\nX-Two: b\r\n\r\nnot found');
      });
    });
    servers.push(http, https, net);
    plain = `http://${await listen(http)}`;
    secure = `https://${await listen(https)}`;
    raw = `http://${await listen(net)}`;
  });
  afterAll(async () => {
    for (const s of servers) {
      (s as Server).closeAllConnections?.();
      await new Promise((r) => s.close(r));
    }
  });

  test('a Content-Length body arrives whole and in order, with a slow consumer (reading pauses and resumes)', async () => {
    const r = await get(`${plain}/image`);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-length']).toBe(String(body.length));
    expect(await digestOf(r, 2)).toEqual({ digest: sha(body), bytes: body.length });
  });

  test('a chunked body arrives whole', async () => {
    const r = await get(`${plain}/chunked`);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(await digestOf(r)).toEqual({ digest: sha(body), bytes: body.length });
  });

  test('HTTPS with the CA given; an unknown certificate is refused unless certificate checks are off', async () => {
    const r = await get(`${secure}/image`, { tls: { rejectUnauthorized: true, ca: tls.certPem } });
    expect(await digestOf(r, 4)).toEqual({ digest: sha(body), bytes: body.length });
    await expect(get(`${secure}/image`)).rejects.toThrow(/self-signed|certificate/);
    const insecure = await get(`${secure}/image`, { tls: { rejectUnauthorized: false } });
    expect((await digestOf(insecure)).digest).toBe(sha(body));
  });

  test('the request carries the caller\'s headers; header injection is refused', async () => {
    const r = await get(`${plain}/headers`, { headers: { authorization: 'Bearer t', range: 'bytes=5-' } });
    const seen = JSON.parse(await r.body.text()) as Record<string, string>;
    expect(seen).toMatchObject({ authorization: 'Bearer t', range: 'bytes=5-', connection: 'close' });
    expect(() => get(`${plain}/headers`, { headers: { 'x-a': 'b\r\nx-evil: 1' } })).toThrow(/invalid header/);
  });

  test('framing: bytes past Content-Length are ignored, a close-delimited body ends with the connection', async () => {
    expect(await (await get(`${raw}/long`)).body.text()).toBe('hello');
    expect(lastRaw).toMatch(/^GET \/long HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    expect(await (await get(`${raw}/close-delimited`)).body.text()).toBe('until the end');
    const notFound = await get(`${raw}/other`);
    expect(notFound.statusCode).toBe(404);
    expect(notFound.headers['x-two']).toEqual(['a', 'b']);
    expect(await notFound.body.text()).toBe('not found');
  });

  test('a body cut short is an error, not a short image', async () => {
    await expect((await get(`${raw}/cut`)).body.text()).rejects.toThrow(/5 bytes of the body missing/);
    await expect((await get(`${raw}/cut-chunked`)).body.text()).rejects.toThrow(/middle of a chunked body/);
  });

  test('no HTTP response, a refused connection and a silent server are errors', async () => {
    await expect(get(`${raw}/garbage`)).rejects.toThrow(/not an HTTP\/1.x response/);
    await expect(get('http://127.0.0.1:1/x')).rejects.toThrow(/ECONNREFUSED/);
    const silent = await get(`${raw}/silent`, { timeoutMs: 300 });
    await expect(silent.body.text()).rejects.toThrow(/no data from 127\.0\.0\.1:\d+ for 0\.3 seconds/);
  });
});

describe('HttpSource over httpGet: redirects as python-requests follows them', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createHttpServer(handler);
    port = Number((await listen(server)).split(':')[1]);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const open = (url: string, proxies: { http?: string } = {}) =>
    HttpSource.open([url], {
      imageId: 'img',
      http: { timeoutSeconds: 5, insecure: false, cafile: undefined, proxies, noProxy: undefined, authorization: 'Bearer secret' },
      retry: { retries: 0, intervalSeconds: 0, deadline: undefined, maxDurationSeconds: 0 },
      clock: realClock,
      log: memoryLogger().log,
    });
  const headersSeen = async (source: HttpSource) => {
    const parts: Buffer[] = [];
    for await (const c of source) parts.push(Buffer.from(c));
    return JSON.parse(Buffer.concat(parts).toString()) as Record<string, string>;
  };

  test('301, 302, 307 and 308 are followed; credentials stay on the same host and are dropped for another', async () => {
    for (const status of [301, 302, 307, 308]) {
      expect(await headersSeen(await open(`http://127.0.0.1:${port}/redirect/${status}/127.0.0.1:${port}/headers`))).toMatchObject({ authorization: 'Bearer secret' });
    }
    const elsewhere = await headersSeen(await open(`http://127.0.0.1:${port}/redirect/302/localhost:${port}/headers`));
    expect(elsewhere.host).toBe(`localhost:${port}`);
    expect(elsewhere.authorization).toBeUndefined();
  });

  test('through a proxy (image_info.proxies) the request goes to the proxy, redirects included', async () => {
    const proxy = new ForwardProxy();
    try {
      const url = await proxy.start();
      const seen = await headersSeen(await open(`http://127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/headers`, { http: url }));
      expect(seen.authorization).toBe('Bearer secret');
      expect(proxy.forwarded).toEqual([`http://127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/headers`, `http://127.0.0.1:${port}/headers`]);
    } finally {
      await proxy.stop();
    }
  });

  test('a redirect loop ends after 5 redirects with the 3xx as the answer', async () => {
    const loop = `127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/redirect/302/127.0.0.1:${port}/headers`;
    await expect(open(`http://${loop}`)).rejects.toThrow(/Received status code 302/);
  });
});

describe('ChunkedDecoder', () => {
  test('sizes, extensions and trailers, split at every byte', () => {
    const wire = Buffer.from('4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n');
    for (let split = 1; split < wire.length; split++) {
      const d = new ChunkedDecoder();
      const out: Buffer[] = [];
      const first = d.feed(wire.subarray(0, split), (p) => out.push(Buffer.from(p)));
      const done = d.feed(wire.subarray(split), (p) => out.push(Buffer.from(p)));
      expect(first).toBe(false);
      expect(done).toBe(true);
      expect(Buffer.concat(out).toString()).toBe('Wikipedia in\r\n\r\nchunks.');
    }
  });

  test('a bad size or data longer than its size is an error', () => {
    expect(() => new ChunkedDecoder().feed(Buffer.from('zz\r\n'), () => undefined)).toThrow(/bad chunk size/);
    expect(() => new ChunkedDecoder().feed(Buffer.from('2\r\nabc\r\n'), () => undefined)).toThrow(/longer than its size/);
  });
});
