import { Writable } from 'node:stream';
import { realClock } from '../src/clock.ts';
import { DiskGuard } from '../src/hardware/disk-guard.ts';
import { createLogger } from '../src/log.ts';
import { runCommand } from '../src/run.ts';
import { HttpSource } from '../src/writers/http-source.ts';
import { writeImageToDevice } from '../src/writers/write-image.ts';

/**
 * One agent write in its own process, so that its peak memory is its own:
 * `node bench/write-child.ts URL DEVICE DIGEST [ALGORITHM]`. Prints one JSON line.
 */
const [url, device, digest, algorithm = 'sha256'] = process.argv.slice(2) as [string, string, string, string?];
const { log } = createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });
const guard = new DiskGuard({ allowDevices: [device] });
const sourceOpts = {
  imageId: 'bench', http: { timeoutSeconds: 60, insecure: false, cafile: undefined, proxies: {}, noProxy: undefined, authorization: undefined },
  clock: realClock, log, retry: { retries: 0, intervalSeconds: 0, deadline: undefined, maxDurationSeconds: 0 },
};
const started = performance.now();
const result = await writeImageToDevice({
  imageId: 'bench', device, openSource: () => HttpSource.open([url], sourceOpts),
  expected: { algorithm, value: digest, source: 'bench' },
  policy: { diskFormat: undefined, permitted: ['raw', 'gpt'], deepInspection: true },
  retries: 0, retryIntervalSeconds: 0, run: runCommand, log, clock: realClock,
  guard: async () => void (await guard.check(device)),
});
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ seconds, bytes: result.bytes, maxRssKiB: process.resourceUsage().maxRSS })}\n`);
