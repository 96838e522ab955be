import type { AgentContext } from '../agent-context.ts';
import type { StepData, StepDefinition, StepKind, StepProvider } from './types.ts';

interface Candidate {
  provider: StepProvider;
  definition: StepDefinition;
  data: StepData;
}

/**
 * All step providers of the agent, merged as IPA merges its hardware managers' steps
 * (spec §8.3): for each step name the winner has the higher support level, then the higher
 * priority, then the provider name that sorts first. The winner is also the step that runs,
 * so what get_*_steps reports and what execute_*_step does never disagree.
 */
export class StepRegistry {
  private readonly providers: StepProvider[] = [];

  constructor(providers: StepProvider[] = []) {
    for (const p of providers) this.add(p);
  }

  add(provider: StepProvider): void {
    if (this.providers.some((p) => p.displayName === provider.displayName)) {
      throw new Error(`step provider ${provider.displayName} is registered twice`);
    }
    this.providers.push(provider);
  }

  list(): readonly StepProvider[] {
    return this.providers;
  }

  /** hardware_manager_version: `{name: version}` of every provider (spec §8.2). */
  versions(): Record<string, string> {
    return Object.fromEntries(this.providers.map((p) => [p.name, p.version]));
  }

  /** The deduplicated steps of one kind, keyed by provider display name (spec §8.3, §8.5). */
  stepsFor(kind: StepKind, ctx: AgentContext): Record<string, StepData[]> {
    const result: Record<string, StepData[]> = {};
    for (const winner of this.winners(kind, ctx).values()) {
      (result[winner.provider.displayName] ??= []).push(winner.data);
    }
    return result;
  }

  /** The step that execute_<kind>_step runs for `name`, if any provider offers it for that kind. */
  find(kind: StepKind, name: string, ctx: AgentContext): Candidate | undefined {
    return this.winners(kind, ctx).get(name);
  }

  private winners(kind: StepKind, ctx: AgentContext): Map<string, Candidate> {
    const byName = new Map<string, Candidate>();
    for (const provider of this.providers) {
      for (const definition of provider.steps) {
        const offer = definition.kinds[kind];
        if (!offer) continue;
        const priority = typeof offer.priority === 'function' ? offer.priority(ctx) : offer.priority;
        const data: StepData = {
          step: definition.step,
          priority,
          interface: definition.interface,
          reboot_requested: definition.reboot_requested ?? false,
        };
        if (kind !== 'deploy') data.abortable = offer.abortable ?? false;
        if (definition.argsinfo) data.argsinfo = definition.argsinfo;
        const candidate = { provider, definition, data };
        const current = byName.get(definition.step);
        if (!current || beats(candidate, current)) byName.set(definition.step, candidate);
      }
    }
    return byName;
  }
}

function beats(a: Candidate, b: Candidate): boolean {
  if (a.provider.supportLevel !== b.provider.supportLevel) return a.provider.supportLevel > b.provider.supportLevel;
  if (a.data.priority !== b.data.priority) return a.data.priority > b.data.priority;
  return a.provider.displayName < b.provider.displayName;
}
