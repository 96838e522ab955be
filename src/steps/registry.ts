import type { AgentContext } from '../agent-context.ts';
import type { ArgInfo, StepData, StepDefinition, StepKind, StepProvider } from './types.ts';

export interface Candidate {
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

  /**
   * Problems that make the offered steps untrustworthy (an operator plugin that failed to
   * load). While there are any, get_*_steps fails with them instead of offering an
   * incomplete plan: a custom-agent deploy must not go active without the operator's steps.
   */
  readonly loadProblems: string[] = [];

  /** Lets providers re-read their inputs; called before steps are listed or run. */
  async refresh(ctx: AgentContext): Promise<void> {
    for (const p of this.providers) await p.refresh?.(ctx);
  }

  /** The step that loses to `name`'s winner for `kind`, if any: for "overrides" notes. */
  overridden(kind: StepKind, name: string, ctx: AgentContext): StepProvider[] {
    const winner = this.find(kind, name, ctx);
    if (!winner) return [];
    return this.providers.filter((p) => p !== winner.provider && p.steps.some((s) => s.step === name && s.kinds[kind]));
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
        if (definition.argsinfo) data.argsinfo = reportedArgsinfo(definition.argsinfo);
        const candidate = { provider, definition, data };
        const current = byName.get(definition.step);
        if (!current || beats(candidate, current)) byName.set(definition.step, candidate);
      }
    }
    return byName;
  }
}

/** Only IPA's keys go to Ironic; the agent keeps `type` for its own checks. */
function reportedArgsinfo(argsinfo: NonNullable<StepDefinition['argsinfo']>): Record<string, ArgInfo> {
  return Object.fromEntries(
    Object.entries(argsinfo).map(([name, spec]) => [
      name,
      spec.required === undefined ? { description: spec.description } : { description: spec.description, required: spec.required },
    ]),
  );
}

function beats(a: Candidate, b: Candidate): boolean {
  if (a.provider.supportLevel !== b.provider.supportLevel) return a.provider.supportLevel > b.provider.supportLevel;
  if (a.data.priority !== b.data.priority) return a.data.priority > b.data.priority;
  return a.provider.displayName < b.provider.displayName;
}
