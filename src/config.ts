import { existsSync } from 'node:fs';
import { parseKernelCmdline, readKernelCmdline } from './config/cmdline.ts';
import { OPTIONS, flagName, type OptionName, type OptionSpec, type OptionValues } from './config/options.ts';

export { OPTIONS, flagName } from './config/options.ts';

/** The agent's configuration: parsed once at start-up, passed down, never mutated. */
export type AgentConfig = Readonly<Omit<OptionValues, 'listenHost'> & { listenHost: string }>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Flag values as node:util parseArgs returns them. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface ConfigSources {
  /** Kernel parameters; read from /proc/cmdline when absent. */
  kernelParams?: Map<string, string>;
  flags?: FlagValues;
  /** Only for tests: whether the machine has IPv6 (decides the default listen host). */
  ipv6Enabled?: boolean;
}

/**
 * Builds the configuration: defaults, then kernel parameters, then flags (spec §1.1; we
 * have no oslo config files). Every value is validated; all problems are reported at once.
 */
export function resolveConfig(sources: ConfigSources = {}): AgentConfig {
  const params = sources.kernelParams ?? readKernelCmdline();
  const flags = sources.flags ?? {};
  const values: Record<string, unknown> = {};
  const problems: string[] = [];

  for (const [name, spec] of Object.entries(OPTIONS) as [OptionName, OptionSpec<unknown>][]) {
    const flag = flagName(name);
    const flagValue = flags[flag];
    const raw: { text: string; origin: string }[] = [];
    if (flagValue !== undefined) {
      for (const v of Array.isArray(flagValue) ? flagValue : [flagValue]) {
        raw.push({ text: String(v), origin: `--${flag}` });
      }
    } else if (spec.param !== undefined && params.has(spec.param)) {
      raw.push({ text: params.get(spec.param)!, origin: `kernel parameter ${spec.param}` });
    }
    if (raw.length === 0) {
      values[name] = spec.default;
      continue;
    }
    const parsed: unknown[] = [];
    for (const { text, origin } of raw) {
      const result = spec.schema.safeParse(text);
      if (result.success) parsed.push(result.data);
      else problems.push(`${origin}: ${result.error.issues.map((i) => i.message).join('; ')}`);
    }
    values[name] = spec.repeatable ? parsed.flat() : parsed.at(-1);
  }

  const config = values as OptionValues;
  if (config.listenTls && (!config.tlsCertFile || !config.tlsKeyFile)) {
    problems.push('listen-tls needs both --tls-cert-file and --tls-key-file');
  }
  if ((config.certfile === undefined) !== (config.keyfile === undefined)) {
    problems.push('a client certificate needs both --certfile and --keyfile');
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const ipv6 = sources.ipv6Enabled ?? existsSync('/proc/net/if_inet6');
  return Object.freeze({ ...config, listenHost: config.listenHost ?? (ipv6 ? '::' : '0.0.0.0') });
}

/** Kernel parameters from a file given with --cmdline-file (tests, the demo), or /proc/cmdline. */
export function kernelParamsFrom(cmdlineFile: string | undefined): Map<string, string> {
  return cmdlineFile === undefined ? readKernelCmdline() : readKernelCmdline(cmdlineFile);
}

export { parseKernelCmdline };
