import { benchStartup } from './startup.ts';

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

if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
