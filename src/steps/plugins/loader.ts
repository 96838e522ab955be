import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SupportLevel, type StepDefinition, type StepKind, type StepProvider } from '../types.ts';
import type { PluginProvider, PluginStep } from './api.ts';
import { pluginContext } from './context.ts';
import { asProvider, providerProblems } from './validate.ts';

/** Where the ramdisk build puts plugins (issue 8); the default of ina-plugin-dir. */
export const DEFAULT_PLUGIN_DIR = '/usr/lib/ironic-node-agent/plugins';
const PLUGIN_EXTENSIONS = new Set(['.js', '.mjs', '.ts', '.mts']);
/** A module whose top-level code does not settle in this time is refused (it would hold up the agent's start). */
const IMPORT_TIMEOUT_SECONDS = 30;

export interface LoadedPlugin {
  file: string;
  plugin: PluginProvider;
  provider: StepProvider;
}

export interface PluginLoadResult {
  /** Every candidate module found, loaded or not. */
  files: string[];
  plugins: LoadedPlugin[];
  /** "plugin FILE: ..." messages; any problem makes the agent refuse to offer steps. */
  problems: string[];
}

export interface LoadOptions {
  dirs: readonly string[];
  /** Default timeout of plugin steps that set none (ina-plugin-step-timeout). */
  stepTimeoutSeconds: number;
  /** Provider names the agent already uses (plugins may not take them). */
  reservedNames?: readonly string[];
  importTimeoutSeconds?: number;
}

/**
 * Loads every plugin module from the plugin directories, in name order, and checks each
 * against the rules (validate.ts). A plugin that fails to import (syntax error, a throw at
 * top level, a missing import) or breaks a rule is not loaded; its problems name the file,
 * the step and the rule. Nothing here throws for a plugin's sake.
 */
export async function loadPlugins(opts: LoadOptions): Promise<PluginLoadResult> {
  const result: PluginLoadResult = { files: [], plugins: [], problems: [] };
  const names = new Map<string, string>((opts.reservedNames ?? []).map((n) => [n, 'the agent itself']));
  for (const dir of opts.dirs) {
    let entries: string[];
    try {
      entries = (await readdir(dir)).sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The ramdisk's default directory exists only when the build put plugins there.
      if (code === 'ENOENT' && dir === DEFAULT_PLUGIN_DIR) continue;
      result.problems.push(`plugin directory ${dir}: cannot be read (${code ?? String(err)})`);
      continue;
    }
    for (const entry of entries) {
      const file = join(dir, entry);
      if (!isPluginName(entry) || !(await stat(file).then((s) => s.isFile(), () => false))) continue;
      result.files.push(file);
      const loaded = await loadOne(file, opts, names);
      if ('problems' in loaded) result.problems.push(...loaded.problems.map((p) => `plugin ${file}: ${p}`));
      else {
        names.set(loaded.plugin.name, file);
        result.plugins.push(loaded);
      }
    }
  }
  return result;
}

/** `.js .mjs .ts .mts` files directly in the directory; declarations and tests are not plugins. */
export function isPluginName(entry: string): boolean {
  if (entry.startsWith('.') || /\.d\.m?ts$/.test(entry) || /\.(test|spec)\.[cm]?[jt]s$/.test(entry)) return false;
  return PLUGIN_EXTENSIONS.has(extname(entry));
}

async function loadOne(file: string, opts: LoadOptions, names: Map<string, string>): Promise<LoadedPlugin | { problems: string[] }> {
  let module: Record<string, unknown>;
  try {
    module = await importWithTimeout(file, opts.importTimeoutSeconds ?? IMPORT_TIMEOUT_SECONDS);
  } catch (err) {
    return { problems: [importProblem(err)] };
  }
  const exported = module.default ?? module.provider;
  if (exported === undefined) return { problems: ['exports no provider: add `export default { name, version, steps: [...] }`'] };
  const problems = providerProblems(exported);
  if (problems.length > 0) return { problems };
  const plugin = asProvider(exported);
  const owner = names.get(plugin.name);
  if (owner !== undefined) return { problems: [`provider name "${plugin.name}" is already used by ${owner}`] };
  return { file, plugin, provider: toStepProvider(plugin, file, opts.stepTimeoutSeconds) };
}

async function importWithTimeout(file: string, seconds: number): Promise<Record<string, unknown>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`its top-level code did not finish within ${seconds} s`)), seconds * 1000);
  });
  try {
    return (await Promise.race([import(pathToFileURL(file).href), timeout])) as Record<string, unknown>;
  } finally {
    clearTimeout(timer);
  }
}

/** A message that says what kind of failure it was, with the position for syntax errors. */
function importProblem(err: unknown): string {
  if (!(err instanceof Error)) return `cannot be loaded: ${String(err)}`;
  const code = (err as NodeJS.ErrnoException).code;
  if (err instanceof SyntaxError || code === 'ERR_INVALID_TYPESCRIPT_SYNTAX' || code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
    // V8 puts "file:///path:LINE" on the first stack line of a module syntax error.
    const where = /(?:file:\/\/)?(\/[^\s:]+):(\d+)/.exec(err.stack ?? '');
    const tsHint = code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' ? ' (Node strips types only: no enums, namespaces or parameter properties)' : '';
    return `syntax error${where ? ` at line ${where[2]}` : ''}: ${err.message.split('\n')[0]}${tsHint}`;
  }
  if (code === 'ERR_MODULE_NOT_FOUND') return `cannot be loaded: ${err.message.split('\n')[0]}`;
  return `throws while loading: ${err.name}: ${err.message.split('\n')[0]}`;
}

function toStepProvider(plugin: PluginProvider, file: string, stepTimeoutSeconds: number): StepProvider {
  return {
    displayName: plugin.name,
    name: plugin.name,
    version: plugin.version,
    supportLevel: plugin.supportLevel ?? SupportLevel.SERVICE_PROVIDER,
    origin: file,
    steps: plugin.steps.map((s) => toStepDefinition(s, stepTimeoutSeconds)),
  };
}

function toStepDefinition(s: PluginStep, stepTimeoutSeconds: number): StepDefinition {
  const kinds: StepDefinition['kinds'] = {};
  for (const kind of ['deploy', 'clean', 'service'] as StepKind[]) {
    const offer = s[kind];
    if (offer) kinds[kind] = kind === 'deploy' ? { priority: offer.priority } : { priority: offer.priority, abortable: offer.abortable ?? false };
  }
  const declared = Object.keys(s.argsinfo ?? {});
  return {
    step: s.step,
    interface: s.interface,
    kinds,
    reboot_requested: s.reboot_requested ?? false,
    ...(s.argsinfo ? { argsinfo: s.argsinfo } : {}),
    strictArgs: true,
    timeoutSeconds: s.timeout ?? stepTimeoutSeconds,
    // The plugin sees only the arguments it declared (checked before this runs, engine.ts).
    run: (call, ctx) => Promise.resolve(s.run(pick(call.args, declared), pluginContext(s.step, call, ctx))),
  };
}

function pick(args: Record<string, unknown>, names: string[]): Record<string, unknown> {
  return Object.fromEntries(names.filter((n) => Object.hasOwn(args, n)).map((n) => [n, args[n]]));
}
