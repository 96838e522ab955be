import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
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
  /** MB/s (10^6 bytes per second), each the best of `runs`. */
  agent_mb_s: number;
  curl_sha256sum_dd_mb_s: number;
  ipa_style_python_mb_s: number;
  agent_vs_curl_dd: number;
  agent_vs_ipa_style: number;
  /** Peak RSS of the agent's writer process for a small and the full image. */
  agent_peak_rss_mib_small: number;
  agent_peak_rss_mib_full: number;
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
 * here and now: `curl | tee >(sha256sum) | dd oflag=direct` and IPA's Python loop. Root only
 * (it makes and removes its own loop device).
 */
export async function benchWriteImage(opts: { imageMiB?: number; runs?: number } = {}): Promise<WriteBenchResult> {
  const imageMiB = opts.imageMiB ?? 1024;
  const runs = opts.runs ?? 2;
  const dir = await mkdtemp(join(tmpdir(), 'ina-bench-write-'));
  const bytes = imageMiB * MiB;
  let loop: string | undefined;
  let server: { url: string; stop: () => void } | undefined;
  try {
    const sha = await makeImage(join(dir, 'full.img'), bytes);
    const smallSha = await makeImage(join(dir, 'small.img'), 64 * MiB);
    const backing = join(dir, 'disk');
    execFileSync('truncate', ['-s', String(bytes + 64 * MiB), backing]);
    loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const device = loop;
    server = await serve(dir);
    const url = `${server.url}/full.img`;
    const best = async (fn: () => Promise<unknown>) => {
      let t = Infinity;
      for (let i = 0; i < runs; i++) t = Math.min(t, await timed(fn));
      return t;
    };
    const agentRun = async (u: string, digest: string) => JSON.parse((await run(process.execPath, [CHILD, u, device, digest])).stdout) as { seconds: number; maxRssKiB: number };
    const curl = await best(() => run('bash', ['-c', `set -o pipefail; curl -sf "$0" | tee >(sha256sum >/dev/null) | dd of="$1" bs=4M oflag=direct iflag=fullblock status=none`, url, device]));
    const python = await best(() => run('python3', ['-c', IPA_STYLE, url, device]));
    let agent = Infinity;
    let fullRss = 0;
    for (let i = 0; i < runs; i++) {
      const r = await agentRun(url, sha);
      agent = Math.min(agent, r.seconds);
      fullRss = Math.max(fullRss, r.maxRssKiB);
    }
    const small = await agentRun(`${server.url}/small.img`, smallSha);
    const mbs = (s: number) => Math.round(bytes / 1e6 / s);
    return {
      image_mib: imageMiB,
      agent_mb_s: mbs(agent),
      curl_sha256sum_dd_mb_s: mbs(curl),
      ipa_style_python_mb_s: mbs(python),
      agent_vs_curl_dd: Math.round((curl / agent) * 100) / 100,
      agent_vs_ipa_style: Math.round((python / agent) * 100) / 100,
      agent_peak_rss_mib_small: Math.round(small.maxRssKiB / 1024),
      agent_peak_rss_mib_full: Math.round(fullRss / 1024),
    };
  } finally {
    server?.stop();
    if (loop) execFileSync('losetup', ['-d', loop]);
    await rm(dir, { recursive: true, force: true });
  }
}
