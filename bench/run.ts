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
  const imageMiB = sizeArg ? Number(sizeArg.split('=')[1]) : 1024;
  say(`\nwhole-disk write: ${imageMiB} MiB raw image (half random, half zero MiB blocks), HTTP on 127.0.0.1 -> loop device, sha256 (best of 2)`);
  const w = await benchWriteImage({ imageMiB });
  Object.assign(report, w);
  say(`  agent (stream, verify, O_DIRECT):          ${w.agent_mb_s} MB/s`);
  say(`  baseline curl | tee >(sha256sum) | dd:     ${w.curl_sha256sum_dd_mb_s} MB/s  (agent ${w.agent_vs_curl_dd}x)`);
  say(`  baseline IPA-style Python loop + fsync:    ${w.ipa_style_python_mb_s} MB/s  (agent ${w.agent_vs_ipa_style}x)`);
  say(`  agent peak RSS: ${w.agent_peak_rss_mib_small} MiB for 64 MiB, ${w.agent_peak_rss_mib_full} MiB for ${imageMiB} MiB (flat memory)`);
} else {
  say('\nwhole-disk write: skipped (needs root for a loop device)');
}

if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
