import { z } from 'zod';
import type { AgentContext } from '../../agent-context.ts';

/** IPA's [container] options (spec §1.2), after the lookup's agent_containers overrides (§3.2). */
export interface ContainerSettings {
  runner: string;
  allowArbitraryContainers: boolean;
  allowedContainers: string[];
  containerStepsFile: string;
  pullOptions: string[];
  runOptions: string[];
}

/**
 * Options as argv words. Ironic sends them as strings ("--rm --network=host") or lists, and
 * IPA splits every item on whitespace, so an option value cannot contain a space.
 */
function optionWords(value: string | string[]): string[] {
  return (Array.isArray(value) ? value : [value]).flatMap((item) => item.split(/\s+/)).filter((w) => w !== '');
}

const OVERRIDES = {
  allow_arbitrary_containers: z.boolean(),
  allowed_containers: z.union([z.array(z.string()), z.string().transform((s) => s.split(',').map((w) => w.trim()).filter(Boolean))]),
  container_steps_file: z.string().regex(/^\//, 'must be an absolute path'),
  runner: z.enum(['podman', 'docker']),
  pull_options: z.union([z.array(z.string()), z.string()]),
  run_options: z.union([z.array(z.string()), z.string()]),
} as const;

/**
 * The settings in force now: the agent's options, with each agent_containers key Ironic
 * sent applied when it is valid; unknown keys and bad values are ignored with a warning,
 * as IPA does (spec §3.2).
 */
export function containerSettings(ctx: AgentContext): ContainerSettings {
  const c = ctx.config;
  const settings: ContainerSettings = {
    runner: c.containerRunner,
    allowArbitraryContainers: c.allowArbitraryContainers,
    allowedContainers: [...c.allowedContainers],
    containerStepsFile: c.containerStepsFile,
    pullOptions: [...c.containerPullOptions],
    runOptions: [...c.containerRunOptions],
  };
  const fromIronic = ctx.conductor.settings?.agentContainers ?? {};
  for (const [key, value] of Object.entries(fromIronic)) {
    if (value === null || value === undefined) continue;
    const schema = (OVERRIDES as Record<string, z.ZodType>)[key];
    const parsed = schema?.safeParse(value);
    if (!schema || !parsed?.success) {
      ctx.log.warn({ key }, schema ? 'ignoring an agent_containers value of the wrong type' : 'ignoring an unknown agent_containers key');
      continue;
    }
    const v = parsed.data as never;
    if (key === 'allow_arbitrary_containers') settings.allowArbitraryContainers = v;
    else if (key === 'allowed_containers') settings.allowedContainers = v;
    else if (key === 'container_steps_file') settings.containerStepsFile = v;
    else if (key === 'runner') settings.runner = v;
    else if (key === 'pull_options') settings.pullOptions = optionWords(v);
    else if (key === 'run_options') settings.runOptions = optionWords(v);
  }
  return settings;
}

export { optionWords };
