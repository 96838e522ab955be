import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { realClock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import { DiskGuard } from '../hardware/disk-guard.ts';
import { createLogger } from '../log.ts';
import { runCommand } from '../run.ts';
import { resolveChecksum } from './checksum.ts';
import { HttpSource, fetchText, type HttpSourceOptions } from './http-source.ts';
import { validateImageInfo } from './image-info.ts';
import { moveBackupGptToEnd, readPartitionTable, rescanPartitions, type PartitionTable } from './partition-table.ts';
import { Progress, type ProgressReport } from './progress.ts';
import { FileSource } from './source.ts';
import { writeImageToDevice } from './write-image.ts';

export const WRITE_IMAGE_USAGE = `Usage: ironic-node-agent write-image <url|file> <device> --checksum VALUE|URL [options]

Streams an image onto a block device with the agent's data path and safety rules, without
Ironic (like coreos-installer): the device must not be mounted, used as swap or held, and it
stays unbootable until the image verified.

Options:
  --checksum VALUE|URL   expected digest (sha256/sha512 by length) or a checksum file URL (required)
  --hash-algo NAME       algorithm of --checksum when its length does not tell (e.g. sha384)
  --disk-format FMT      what the image must be (raw, qcow2); default: detected, raw/gpt/qcow2 permitted
  --md5                  accept an MD5 checksum
  --insecure             do not verify the image server's TLS certificate
  --cafile FILE          CA bundle for the image server
  --retries N            download retries (default 3), --retry-interval SECONDS (default 5)
Logs are JSON lines on stdout; progress goes to stderr.`;

const Args = z.object({
  checksum: z.string({ error: '--checksum is required: an image is never written unverified' }).min(1, '--checksum is required: an image is never written unverified'),
  'hash-algo': z.string().optional(),
  'disk-format': z.string().optional(),
  md5: z.boolean().optional(),
  insecure: z.boolean().optional(),
  cafile: z.string().optional(),
  retries: z.coerce.number().int().min(0).default(3),
  'retry-interval': z.coerce.number().min(0).default(5),
});

/** `ironic-node-agent write-image`: exit 0 when the image is on the device and verified, 1 when not, 2 on bad usage. */
export async function writeImageCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        checksum: { type: 'string' }, 'hash-algo': { type: 'string' }, 'disk-format': { type: 'string' }, md5: { type: 'boolean' },
        insecure: { type: 'boolean' }, cafile: { type: 'string' }, retries: { type: 'string' }, 'retry-interval': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`ironic-node-agent write-image: ${errorMessage(err)}\n${WRITE_IMAGE_USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stderr.write(`${WRITE_IMAGE_USAGE}\n`);
    return 0;
  }
  const args = Args.safeParse(parsed.values);
  const [source, device] = parsed.positionals;
  if (!args.success || !source || !device || parsed.positionals.length !== 2) {
    const why = args.success ? 'expected an image and a device' : args.error.issues.map((i) => i.message).join('; ');
    process.stderr.write(`ironic-node-agent write-image: ${why}\n${WRITE_IMAGE_USAGE}\n`);
    return 2;
  }
  const opts = args.data;
  const { log } = createLogger();
  const isHttp = /^https?:\/\//.test(source);
  const url = isHttp ? source : pathToFileURL(resolve(source)).href;
  const id = basename(new URL(url).pathname) || source;
  let stopSignals: [NodeJS.Signals, () => void][] = [];
  try {
    const hashAlgo = opts['hash-algo'];
    // validateImageInfo wants http(s) URLs; a local file is checked as one with the same name.
    const info = validateImageInfo(
      {
        id, urls: [isHttp ? url : `http://localhost/${encodeURIComponent(id)}`],
        ...(hashAlgo ? { os_hash_algo: hashAlgo, os_hash_value: opts.checksum } : { checksum: opts.checksum }),
      },
      { md5Enabled: opts.md5 === true },
    );
    info.urls = [url];
    const guard = new DiskGuard({ allowDevices: [device] });
    await guard.check(device);
    // Ctrl-C or SIGTERM mid-write: stop, wipe both partition tables, exit 1 (never a half-written bootable disk).
    const stop = new AbortController();
    const onSignal = (name: string) => () => stop.abort(new Error(`interrupted by ${name}`));
    stopSignals = [['SIGINT', onSignal('SIGINT')], ['SIGTERM', onSignal('SIGTERM')]];
    for (const [name, handler] of stopSignals) process.once(name, handler);
    const sourceOpts: HttpSourceOptions = {
      imageId: id, signal: stop.signal,
      http: { timeoutSeconds: 60, insecure: opts.insecure === true, cafile: opts.cafile, proxies: {}, noProxy: undefined, authorization: undefined },
      clock: realClock, log,
      retry: { retries: opts.retries, intervalSeconds: opts['retry-interval'], deadline: undefined, maxDurationSeconds: 0 },
    };
    const expected = await resolveChecksum(info, { md5Enabled: opts.md5 === true, fetchText: (u) => fetchText(u, sourceOpts), log });
    const progress = new Progress({ image: id, log, render: progressBar() });
    let table: PartitionTable | undefined;
    const result = await writeImageToDevice({
      imageId: id, device, expected,
      openSource: () => (isHttp ? HttpSource.open([url], sourceOpts) : FileSource.open(url)),
      policy: { diskFormat: opts['disk-format'], permitted: ['raw', 'gpt', 'qcow2'], deepInspection: true },
      retries: opts.retries, retryIntervalSeconds: opts['retry-interval'], run: runCommand, log, clock: realClock,
      guard: async () => void (await guard.check(device)),
      progress,
      signal: stop.signal,
      beforeCommit: (head, dev) => {
        table = readPartitionTable(head, dev.logicalBlockSize, dev.path);
      },
    });
    await rescanPartitions(runCommand, device, log);
    if (table && (await moveBackupGptToEnd(device, result.head, table, result.device.size, result.device.logicalBlockSize))) {
      await rescanPartitions(runCommand, device, log);
    }
    process.stderr.write(
      `\n${id} written to ${device}: ${result.bytes} bytes in ${result.seconds.toFixed(1)} s ` +
        `(${Math.round(result.bytes / 1e6 / Math.max(result.seconds, 0.001))} MB/s), ${expected.algorithm} verified\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`\nironic-node-agent write-image: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    for (const [name, handler] of stopSignals) process.off(name, handler);
    log.flush();
  }
}

/** One line on stderr, redrawn in place on a terminal, a line every 5 % otherwise. */
function progressBar(): (r: ProgressReport) => void {
  const tty = process.stderr.isTTY === true;
  let lastPercent = -5;
  return (r) => {
    const pct = r.percent;
    const text = `${r.phase} ${pct === null ? '' : `${pct.toFixed(1)}% `}${(r.bytes_written / 2 ** 20).toFixed(0)} MiB ${r.rate_mb_per_s} MB/s${r.eta_seconds === null ? '' : ` ETA ${r.eta_seconds} s`}`;
    if (tty) process.stderr.write(`\r${text.padEnd(72)}`);
    else if (pct !== null && pct >= lastPercent + 5) {
      lastPercent = pct;
      process.stderr.write(`${text}\n`);
    }
  };
}
