import { hashCeilingMbps } from './hash-ceiling.ts';
import { benchStartup } from './startup.ts';
import { benchWriteImage } from './write-image.ts';

/**
 * `npm run bench`: measurements printed as ratios against baselines run in the same
 * invocation on this machine. `--json` ends with one JSON object on the last line.
 */
const json = process.argv.includes('--json');
const report: Record<string, number> = {};
const say = (text: string) => process.stderr.write(`${text}\n`);

say('startup: agent start -> first lookup request (median)');
const startup = await benchStartup();
Object.assign(report, startup);
const ratio = (ms: number) => `${(ms / startup.node_baseline_ms).toFixed(1)}x bare node`;
say(`  bundled agent, V8 compile cache warm: ${startup.agent_start_to_lookup_ms} ms (${ratio(startup.agent_start_to_lookup_ms)})`);
say(`  bundled agent, no compile cache:      ${startup.agent_cold_start_to_lookup_ms} ms (${ratio(startup.agent_cold_start_to_lookup_ms)}; goal < 300 ms: ${startup.agent_cold_start_to_lookup_ms < 300 ? 'met' : 'NOT met'})`);
say(`  agent from TypeScript sources:        ${startup.agent_source_start_to_lookup_ms} ms (${ratio(startup.agent_source_start_to_lookup_ms)})`);
say(`  baseline, node start and exit:        ${startup.node_baseline_ms} ms`);

const sizeArg = process.argv.find((a) => a.startsWith('--image-mib='));
if (process.getuid?.() === 0) {
  const imageMiB = sizeArg ? Number(sizeArg.split('=')[1]) : 2048;
  say(`\nwhole-disk write: ${imageMiB} MiB raw image (half random, half zero MiB blocks), HTTP on 127.0.0.1 (sendfile) -> loop device with direct I/O (best of 2)`);
  const w = await benchWriteImage({ imageMiB, say });
  Object.assign(report, w);
  const ceiling = { sha256_ceiling_mbps: hashCeilingMbps('sha256'), sha512_ceiling_mbps: hashCeilingMbps('sha512') };
  Object.assign(report, ceiling);
  const vs = (mbps: number) => `${(mbps / w.dd_direct_mbps).toFixed(2)}x the dd limit`;
  const vsHash = (mbps: number, algorithm: 'sha256' | 'sha512') => `${(mbps / ceiling[`${algorithm}_ceiling_mbps`]).toFixed(2)}x the ${algorithm} ceiling`;
  const vsRaw = (mbps: number) => `${(mbps / w.raw_sha256_mbps).toFixed(2)}x raw`;
  say(`  dd if=image of=dev bs=4M oflag=direct (local file, the limit): ${w.dd_direct_mbps} MB/s`);
  say(`  hash ceiling, one core in memory:      sha256 ${ceiling.sha256_ceiling_mbps} MB/s (${vs(ceiling.sha256_ceiling_mbps)}), sha512 ${ceiling.sha512_ceiling_mbps} MB/s (${vs(ceiling.sha512_ceiling_mbps)})`);
  say(`  agent raw + sha256:                       ${w.raw_sha256_mbps} MB/s  (${vs(w.raw_sha256_mbps)}, goal 0.85x; ${vsHash(w.raw_sha256_mbps, 'sha256')})`);
  say(`  agent raw + sha256, all-random image:   ${w.raw_sha256_random_mbps} MB/s  (${vs(w.raw_sha256_random_mbps)}; no zero blocks; ${vsHash(w.raw_sha256_random_mbps, 'sha256')})`);
  say(`  agent raw + sha512:                       ${w.raw_sha512_mbps} MB/s  (${vs(w.raw_sha512_mbps)}, goal 0.55x; ${vsHash(w.raw_sha512_mbps, 'sha512')})`);
  say(`  agent zstd + sha256:                      ${w.zstd_mbps} MB/s of image  (${vsRaw(w.zstd_mbps)}; goal 0.8x)`);
  say(`  agent gzip + sha256:                      ${w.gzip_mbps} MB/s of image  (${vsRaw(w.gzip_mbps)})`);
  say(`  agent qcow2 + sha256:                     ${w.qcow2_mbps} MB/s of image  (${vsRaw(w.qcow2_mbps)}; staged on the disk, then qemu-img)`);
  say(`  baseline curl | tee >(openssl sha256) | dd: ${w.curl_openssl_dd_mbps} MB/s  (agent ${(w.raw_sha256_mbps / w.curl_openssl_dd_mbps).toFixed(2)}x)`);
  say(`  baseline curl | tee >(sha256sum) | dd:    ${w.curl_sha256sum_dd_mbps} MB/s  (agent ${(w.raw_sha256_mbps / w.curl_sha256sum_dd_mbps).toFixed(2)}x)`);
  say(`  baseline IPA-style Python loop + fsync:   ${w.ipa_style_python_mbps} MB/s  (agent ${(w.raw_sha256_mbps / w.ipa_style_python_mbps).toFixed(2)}x)`);
  say(`  agent peak RSS (VmHWM): ${w.peak_rss_mib_2g} MiB for ${imageMiB} MiB, ${w.peak_rss_mib_16g} MiB for a 16 GiB sparse image (goal: < 80 MiB, the same for both)`);
} else {
  say('\nwhole-disk write: skipped (needs root for a loop device)');
}

if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
