import { parseArgs } from 'node:util';
import { Agent } from '../agent.ts';
import { resolveConfig, kernelParamsFrom } from '../config.ts';
import { createLogger } from '../log.ts';
import { installPlugins } from './plugins/install.ts';
import { STEP_KINDS, type StepData, type StepKind } from './types.ts';

export const STEPS_USAGE = `Usage: ironic-node-agent steps [--plugins DIR]... [--json] [--cmdline-file FILE]

Loads the operator plugins (from each --plugins DIR, else from ina-plugin-dir / the default
/usr/lib/ironic-node-agent/plugins), checks every plugin against the rules, and lists the
steps the agent would offer Ironic for each kind (deploy, clean, service) with their
provider, priority, interface and arguments. Exit code 1 when a plugin is refused.`;

interface Row extends StepData {
  provider: string;
  replaces: string[];
}

/** `ironic-node-agent steps`: what the agent would offer, as an operator checks a plugin directory before building a ramdisk. */
export async function stepsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      plugins: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'cmdline-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(`${STEPS_USAGE}\n`);
    return 0;
  }
  const flags: Record<string, string[]> = {};
  if (values.plugins) flags['plugin-dir'] = values.plugins.map((d) => (d.startsWith('/') ? d : `${process.cwd()}/${d}`));
  const config = resolveConfig({ kernelParams: values['cmdline-file'] ? kernelParamsFrom(values['cmdline-file']) : new Map(), flags });
  // Log lines would repeat the listing; problems are printed in it.
  const { log, ring } = createLogger({ destination: process.stderr });
  log.level = 'silent';
  const agent = new Agent({ config, log, logRing: ring });
  const ctx = agent.context;
  const loaded = await installPlugins(ctx);
  await ctx.steps.refresh(ctx).catch((err: unknown) => loaded.problems.push(String(err instanceof Error ? err.message : err)));

  const listing: Record<StepKind, Row[]> = { deploy: [], clean: [], service: [] };
  for (const kind of STEP_KINDS) {
    for (const [provider, steps] of Object.entries(ctx.steps.stepsFor(kind, ctx))) {
      for (const s of steps) listing[kind].push({ ...s, provider, replaces: ctx.steps.overridden(kind, s.step, ctx).map((p) => p.displayName) });
    }
    listing[kind].sort((a, b) => b.priority - a.priority || a.step.localeCompare(b.step));
  }
  const plugins = loaded.plugins.map((p) => ({ file: p.file, name: p.plugin.name, version: p.plugin.version, steps: p.plugin.steps.map((s) => s.step) }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ plugins, problems: loaded.problems, steps: listing, hardware_manager_version: ctx.steps.versions() }, null, 2)}\n`);
  } else {
    process.stdout.write(render(config.pluginDir, plugins, loaded.problems, listing));
  }
  return loaded.problems.length > 0 ? 1 : 0;
}

function render(dirs: readonly string[], plugins: { file: string; name: string; version: string; steps: string[] }[], problems: string[], listing: Record<StepKind, Row[]>): string {
  const out: string[] = [`Plugin directories: ${dirs.join(', ')}`];
  for (const p of plugins) out.push(`  ok      ${p.file}: ${p.name} ${p.version} (${p.steps.join(', ')})`);
  for (const problem of problems) out.push(`  REFUSED ${problem}`);
  if (plugins.length === 0 && problems.length === 0) out.push('  (no plugins)');
  for (const kind of STEP_KINDS) {
    out.push('', `${kind} steps:`);
    if (listing[kind].length === 0) out.push('  (none)');
    for (const s of listing[kind]) {
      const args = Object.entries(s.argsinfo ?? {}).map(([n, a]) => (a.required ? `${n}*` : n));
      const notes = [
        s.priority === 0 ? 'only when requested' : undefined,
        s.reboot_requested ? 'reboot requested' : undefined,
        s.abortable ? 'abortable' : undefined,
        s.replaces.length > 0 ? `replaces ${s.replaces.join(', ')}` : undefined,
      ].filter(Boolean);
      out.push(
        `  ${String(s.priority).padStart(3)}  ${s.interface}.${s.step}  [${s.provider}]` +
          `${args.length > 0 ? `  args: ${args.join(', ')}` : ''}${notes.length > 0 ? `  (${notes.join('; ')})` : ''}`,
      );
    }
  }
  if (problems.length > 0) out.push('', `${problems.length} problem(s): the agent would refuse to offer any step until they are fixed.`);
  return `${out.join('\n')}\n`;
}
