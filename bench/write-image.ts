import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MiB = 1 << 20;
const CHILD = fileURLToPath(new URL('./write-child.ts', import.meta.url));

export interface WriteBenchResult {
  image_mib: number;
  /** MB/s (10^6 bytes of image per second), each the best of `runs`. */
  raw_sha256_mbps: number;
  raw_sha512_mbps: number;
  zstd_mbps: number;
  /** `dd if=image of=dev bs=4M oflag=direct` from a local file: the device's limit here. */
  dd_direct_mbps: number;
  curl_sha256sum_dd_mbps: number;
  ipa_style_python_mbps: number;
  /** Peak RSS of the agent's writer process for the image and for a 16 GiB sparse one. */
  peak_rss_mib_image: number;
  peak_rss_mib_16g: number;
}

/** node:crypto, not coreutils: sha256sum manages about 170 MB/s here, OpenSSL about 1.5 GB/s. */
async function fileDigest(path: string, algorithm: string): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB }) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}

/** A raw image like real ones: half of its MiB blocks random, half zero. */
async function makeImage(path: string, bytes: number): Promise<string> {
  const fh = await open(path, 'w');
  const h = createHash('sha256');
  const zero = Buffer.alloc(MiB);
  try {
    for (let at = 0, i = 0; at < bytes; at += MiB, i++) {
      const block = i % 2 === 0 ? randomBytes(MiB) : zero;
      h.update(block);
      await fh.write(block, 0, MiB, at);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** A static file server in its own process, so it does not share the agent's event loop. */
async function serve(dir: string): Promise<{ url: string; stop: () => void }> {
  const script = `
const http = require('node:http'), fs = require('node:fs'), path = require('node:path');
const s = http.createServer((req, res) => {
  const file = path.join(${JSON.stringify(dir)}, path.basename(req.url));
  fs.stat(file, (err, st) => {
    if (err) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
    fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
  });
});
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** IPA's loop (spec §9.5): 1 MiB reads from the HTTP response, hashlib, plain writes, one fsync. */
const IPA_STYLE = `
import hashlib, os, sys, urllib.request
url, dev = sys.argv[1], sys.argv[2]
h = hashlib.sha256()
with urllib.request.urlopen(url) as r, open(dev, 'wb') as f:
    while True:
        chunk = r.read(1 << 20)
        if not chunk: break
        h.update(chunk); f.write(chunk)
    f.flush(); os.fsync(f.fileno())
print(h.hexdigest())
`;

/**
 * Whole-disk write throughput from a local HTTP server to a loop device, against baselines run
 * here and now: `dd oflag=direct` from a local file (the device's limit), `curl | tee
 * >(sha256sum) | dd oflag=direct`, and IPA's Python loop. Root only (it makes and removes its
 * own loop devices).
 */
export async function benchWriteImage(opts: { imageMiB?: number; runs?: number } = {}): Promise<WriteBenchResult> {
  const imageMiB = opts.imageMiB ?? 2048;
  const runs = opts.runs ?? 2;
  const dir = await mkdtemp(join(tmpdir(), 'ina-bench-write-'));
  const bytes = imageMiB * MiB;
  const loops: string[] = [];
  const loopOver = (file: string, size: string) => {
    execFileSync('truncate', ['-s', size, file]);
    const dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
    loops.push(dev);
    return dev;
  };
  let server: { url: string; stop: () => void } | undefined;
  try {
    const full = join(dir, 'full.img');
    const sha256 = await makeImage(full, bytes);
    const sha512 = await fileDigest(full, 'sha512');
    execFileSync('zstd', ['-q', '-f', '-T0', '-3', full, '-o', `${full}.zst`]);
    const zstSha = await fileDigest(`${full}.zst`, 'sha256');
    const device = loopOver(join(dir, 'disk'), String(bytes + 64 * MiB));
    server = await serve(dir);
    const url = `${server.url}/full.img`;
    const best = async (fn: () => Promise<unknown>) => {
      let t = Infinity;
      for (let i = 0; i < runs; i++) t = Math.min(t, await timed(fn));
      return t;
    };
    const agentRun = async (u: string, digest: string, algorithm: string, target: string) =>
      JSON.parse((await run(process.execPath, [CHILD, u, target, digest, algorithm])).stdout) as { seconds: number; maxRssKiB: number };
    const agentBest = async (u: string, digest: string, algorithm = 'sha256') => {
      let t = Infinity;
      let rss = 0;
      for (let i = 0; i < runs; i++) {
        const r = await agentRun(u, digest, algorithm, device);
        t = Math.min(t, r.seconds);
        rss = Math.max(rss, r.maxRssKiB);
      }
      return { t, rss };
    };
    const dd = await best(() => run('dd', [`if=${full}`, `of=${device}`, 'bs=4M', 'oflag=direct', 'status=none']));
    const curl = await best(() => run('bash', ['-c', `set -o pipefail; curl -sf "$0" | tee >(sha256sum >/dev/null) | dd of="$1" bs=4M oflag=direct iflag=fullblock status=none`, url, device]));
    const python = await best(() => run('python3', ['-c', IPA_STYLE, url, device]));
    const raw256 = await agentBest(url, sha256);
    const raw512 = await agentBest(url, sha512, 'sha512');
    const zst = await agentBest(`${url}.zst`, zstSha);
    // Memory must not depend on the image size: a 16 GiB sparse image onto a sparse loop device.
    const huge = join(dir, 'huge.img');
    execFileSync('truncate', ['-s', '16G', huge]);
    const hugeDevice = loopOver(join(dir, 'huge-disk'), '17G');
    const hugeRun = await agentRun(`${server.url}/huge.img`, await fileDigest(huge, 'sha256'), 'sha256', hugeDevice);
    const mbps = (sec: number) => Math.round(bytes / 1e6 / sec);
    return {
      image_mib: imageMiB,
      raw_sha256_mbps: mbps(raw256.t),
      raw_sha512_mbps: mbps(raw512.t),
      zstd_mbps: mbps(zst.t),
      dd_direct_mbps: mbps(dd),
      curl_sha256sum_dd_mbps: mbps(curl),
      ipa_style_python_mbps: mbps(python),
      peak_rss_mib_image: Math.round(Math.max(raw256.rss, raw512.rss, zst.rss) / 1024),
      peak_rss_mib_16g: Math.round(hugeRun.maxRssKiB / 1024),
    };
  } finally {
    server?.stop();
    for (const dev of loops) execFileSync('losetup', ['-d', dev]);
    await rm(dir, { recursive: true, force: true });
  }
}
