import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AGENT_NODE_FLAGS, bundleAgent } from '../image-build/bundle.ts';
import { freePort } from './startup.ts';

const run = promisify(execFile);
const MiB = 1 << 20;

export interface WriteBenchResult {
  image_mib: number;
  /** MB/s (10^6 bytes of image per second), each the best of `runs`. */
  raw_sha256_mbps: number;
  /** raw + sha256 of an image with no zero blocks: nothing for zero-skip to gain. */
  raw_sha256_random_mbps: number;
  raw_sha512_mbps: number;
  gzip_mbps: number;
  zstd_mbps: number;
  qcow2_mbps: number;
  /** `dd if=image of=dev bs=4M oflag=direct` from a local file: the device's limit here. */
  dd_direct_mbps: number;
  curl_openssl_dd_mbps: number;
  curl_sha256sum_dd_mbps: number;
  ipa_style_python_mbps: number;
  /** Peak RSS (VmHWM) of the agent process writing the image, and a 16 GiB sparse one. */
  peak_rss_mib_2g: number;
  peak_rss_mib_16g: number;
}

/** node:crypto, not coreutils: sha256sum manages about 170 MB/s here, OpenSSL about 1.5 GB/s. */
async function fileDigest(path: string, algorithm: string): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB }) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}

/** A raw image like real ones: half of its MiB blocks random, half zero (all random with `random`). */
async function makeImage(path: string, bytes: number, random = false): Promise<string> {
  const fh = await open(path, 'w');
  const h = createHash('sha256');
  const zero = Buffer.alloc(MiB);
  try {
    for (let at = 0, i = 0; at < bytes; at += MiB, i++) {
      const block = random || i % 2 === 0 ? randomBytes(MiB) : zero;
      h.update(block);
      await fh.write(block, 0, MiB, at);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/**
 * The image server for every contender: Python's http.server sending files with sendfile(2),
 * so that serving costs almost no CPU on this 2-core machine and the clients are what is measured.
 */
const SENDFILE_SERVER = `
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def copyfile(self, source, outputfile):
        outputfile.flush()
        self.connection.sendfile(source)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=sys.argv[1]))
print(server.server_address[1], flush=True)
server.serve_forever()
`;

async function serve(dir: string): Promise<{ url: string; stop: () => void }> {
  const child = spawn('python3', ['-c', SENDFILE_SERVER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
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
 * The agent as the ramdisk runs it (the bundled file, standalone, its Node flags), driven over its API:
 * standby.prepare_image, polled until it ends. Its peak RSS is the kernel's VmHWM.
 */
class BenchAgent {
  private readonly child: ChildProcess;
  private readonly base: string;

  private constructor(child: ChildProcess, base: string) {
    this.child = child;
    this.base = base;
  }

  static async start(bundle: string, dir: string, device: string): Promise<BenchAgent> {
    const port = await freePort();
    const cmdline = join(dir, 'cmdline');
    await writeFile(cmdline, 'ipa-image-download-connection-retries=0\n');
    const child = spawn(
      process.execPath,
      [...AGENT_NODE_FLAGS, bundle, 'agent', '--cmdline-file', cmdline, '--listen-host', '127.0.0.1', '--listen-port', String(port), '--allow-device', device, '--simulate-power'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const agent = new BenchAgent(child, `http://127.0.0.1:${port}`);
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`the agent exited with ${child.exitCode}`);
      if (await fetch(`${agent.base}/v1/status`).then((r) => r.ok, () => false)) return agent;
      if (i > 300) throw new Error('the agent did not start in 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private runs = 0;

  /** Seconds from the command's start to its end (polled every 20 ms). */
  async prepare(url: string, algorithm: string, digest: string): Promise<number> {
    const started = performance.now();
    // A new image id each time: the agent does not write an image id it already wrote (as IPA).
    const id = `bench-${++this.runs}`;
    const post = await fetch(`${this.base}/v1/commands/?wait=false`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'standby.prepare_image', params: { image_info: { id, urls: [url], os_hash_algo: algorithm, os_hash_value: digest } } }),
    });
    const command = (await post.json()) as { id: string };
    for (;;) {
      const status = (await (await fetch(`${this.base}/v1/commands/${command.id}`)).json()) as { command_status: string; command_error: unknown };
      if (status.command_status !== 'RUNNING') {
        if (status.command_status !== 'SUCCEEDED') throw new Error(`prepare_image failed: ${JSON.stringify(status.command_error)}`);
        return (performance.now() - started) / 1000;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async peakRssKiB(): Promise<number> {
    const status = await readFile(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/**
 * Whole-disk write throughput from a local HTTP server to a loop device, against baselines run
 * here and now: `dd oflag=direct` from a local file (the device's limit), curl piped into a
 * hash and dd, and IPA's Python loop. The loop device does direct I/O to its backing file, so
 * O_DIRECT writes reach the real disk rather than the page cache: the limit is a disk's, as in
 * a real machine. Root only (it makes and removes its own loop devices).
 */
export async function benchWriteImage(opts: { imageMiB?: number; runs?: number; say?: (text: string) => void } = {}): Promise<WriteBenchResult> {
  const imageMiB = opts.imageMiB ?? 2048;
  const runs = opts.runs ?? 2;
  const say = opts.say ?? (() => undefined);
  const dir = await mkdtemp(join(tmpdir(), 'ina-bench-write-'));
  const bytes = imageMiB * MiB;
  const loops: string[] = [];
  const loopOver = (file: string, size: number, preallocate: boolean) => {
    execFileSync(preallocate ? 'fallocate' : 'truncate', preallocate ? ['-l', String(size), file] : ['-s', String(size), file]);
    const dev = execFileSync('losetup', ['--find', '--show', '--direct-io=on', file], { encoding: 'utf8' }).trim();
    loops.push(dev);
    return dev;
  };
  let server: { url: string; stop: () => void } | undefined;
  const agents: BenchAgent[] = [];
  try {
    say('  preparing the images (random + zero MiB blocks; gzip -1, zstd -3, qcow2) and the agent bundle');
    const full = join(dir, 'full.img');
    await makeImage(full, bytes);
    // The agent checks that a whole-disk image brought its partitions, as IPA does.
    execFileSync('sgdisk', ['-o', '-n', '1:2048:0', '-t', '1:8300', full], { stdio: 'ignore' });
    const sha256 = await fileDigest(full, 'sha256');
    const sha512 = await fileDigest(full, 'sha512');
    const random = join(dir, 'random.img');
    await makeImage(random, bytes, true);
    execFileSync('sgdisk', ['-o', '-n', '1:2048:0', '-t', '1:8300', random], { stdio: 'ignore' });
    const randomSha256 = await fileDigest(random, 'sha256');
    execFileSync('zstd', ['-q', '-f', '-T0', '-3', full, '-o', `${full}.zst`]);
    execFileSync('bash', ['-c', 'gzip -1 -c "$0" > "$0.gz"', full]);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', full, `${full}.qcow2`]);
    const digestOf = (suffix: string) => fileDigest(`${full}${suffix}`, 'sha256');
    const [zstSha, gzSha, qcowSha] = [await digestOf('.zst'), await digestOf('.gz'), await digestOf('.qcow2')];
    const bundle = join(dir, 'agent.mjs');
    await bundleAgent(bundle);
    // Room for a staged qcow2 past the image; allocated up front so no contender pays for it.
    // IPA refuses root devices under 4 GiB.
    const device = loopOver(join(dir, 'disk'), Math.max(2 * bytes + 256 * MiB, 5 * 1024 * MiB), true);
    server = await serve(dir);
    const url = `${server.url}/full.img`;
    await run('dd', [`if=${full}`, `of=${device}`, 'bs=4M', 'oflag=direct', 'status=none']);
    const best = async (fn: () => Promise<number>) => {
      let t = Infinity;
      for (let i = 0; i < runs; i++) t = Math.min(t, await fn());
      return t;
    };
    const agentBest = async (u: string, algorithm: string, digest: string) => {
      const agent = await BenchAgent.start(bundle, dir, device);
      agents.push(agent);
      try {
        return { t: await best(() => agent.prepare(u, algorithm, digest)), rss: await agent.peakRssKiB() };
      } finally {
        await agent.stop();
      }
    };
    const shell = (script: string) => () => timed(() => run('bash', ['-c', `set -o pipefail; ${script}`, url, device]));
    say('  running dd, curl | openssl | dd, curl | sha256sum | dd, the IPA-style loop');
    const dd = await best(() => timed(() => run('dd', [`if=${full}`, `of=${device}`, 'bs=4M', 'oflag=direct', 'status=none'])));
    const curlOpenssl = await best(shell('curl -sf "$0" | tee >(openssl sha256 >/dev/null) | dd of="$1" bs=4M oflag=direct iflag=fullblock status=none'));
    const curl = await best(shell('curl -sf "$0" | tee >(sha256sum >/dev/null) | dd of="$1" bs=4M oflag=direct iflag=fullblock status=none'));
    const python = await best(() => timed(() => run('python3', ['-c', IPA_STYLE, url, device])));
    say('  running the agent: raw sha256 (half-zero and all-random images), raw sha512, gzip, zstd, qcow2');
    const raw256 = await agentBest(url, 'sha256', sha256);
    const random256 = await agentBest(`${server.url}/random.img`, 'sha256', randomSha256);
    const raw512 = await agentBest(url, 'sha512', sha512);
    const gz = await agentBest(`${url}.gz`, 'sha256', gzSha);
    const zst = await agentBest(`${url}.zst`, 'sha256', zstSha);
    const qcow = await agentBest(`${url}.qcow2`, 'sha256', qcowSha);
    // Memory must not depend on the image size: a 16 GiB sparse image onto a sparse loop device.
    say('  running the agent: a 16 GiB sparse image');
    const huge = join(dir, 'huge.img');
    execFileSync('truncate', ['-s', '16G', huge]);
    execFileSync('sgdisk', ['-o', '-n', '1:2048:0', '-t', '1:8300', huge], { stdio: 'ignore' });
    const hugeDevice = loopOver(join(dir, 'huge-disk'), 17 * 1024 * MiB, false);
    const hugeAgent = await BenchAgent.start(bundle, dir, hugeDevice);
    agents.push(hugeAgent);
    await hugeAgent.prepare(`${server.url}/huge.img`, 'sha256', await fileDigest(huge, 'sha256'));
    const hugeRss = await hugeAgent.peakRssKiB();
    await hugeAgent.stop();
    const mbps = (sec: number) => Math.round(bytes / 1e6 / sec);
    return {
      image_mib: imageMiB,
      raw_sha256_mbps: mbps(raw256.t),
      raw_sha256_random_mbps: mbps(random256.t),
      raw_sha512_mbps: mbps(raw512.t),
      gzip_mbps: mbps(gz.t),
      zstd_mbps: mbps(zst.t),
      qcow2_mbps: mbps(qcow.t),
      dd_direct_mbps: mbps(dd),
      curl_openssl_dd_mbps: mbps(curlOpenssl),
      curl_sha256sum_dd_mbps: mbps(curl),
      ipa_style_python_mbps: mbps(python),
      peak_rss_mib_2g: Math.round(Math.max(raw256.rss, random256.rss, raw512.rss, gz.rss, zst.rss, qcow.rss) / 1024),
      peak_rss_mib_16g: Math.round(hugeRss / 1024),
    };
  } finally {
    for (const a of agents) await a.stop().catch(() => undefined);
    server?.stop();
    for (const dev of loops) execFileSync('losetup', ['-d', dev]);
    await rm(dir, { recursive: true, force: true });
  }
}
