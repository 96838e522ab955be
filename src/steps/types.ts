import type { AgentContext } from '../agent-context.ts';

/** The three step kinds Ironic asks the agent for (spec §8.5). */
export const STEP_KINDS = ['deploy', 'clean', 'service'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** Ironic driver interfaces a step can belong to (spec §8.1). */
export type StepInterface = 'deploy' | 'raid' | 'bios' | 'management' | 'firmware';

export interface ArgInfo {
  description: string;
  required?: boolean;
}

/** JSON types an argument may be declared with; checked before the step runs, never sent to Ironic. */
export const ARG_TYPES = ['string', 'integer', 'number', 'boolean', 'object', 'array'] as const;
export type ArgType = (typeof ARG_TYPES)[number];

/** argsinfo as a step declares it: IPA's keys plus an optional type the agent checks. */
export type ArgSpec = ArgInfo & { type?: ArgType };

/** What get_*_steps reports for a step: plain data, exactly the keys IPA sends (spec §8.1). */
export interface StepData {
  step: string;
  priority: number;
  interface: StepInterface;
  reboot_requested: boolean;
  abortable?: boolean;
  argsinfo?: Record<string, ArgInfo>;
}

/** The node dict Ironic sends with every step call (Node.as_dict, secrets masked). */
export type NodeDict = Record<string, unknown> & { uuid?: string };

export interface StepCall {
  /** Keyword arguments: the command's extra params, then `step.args` over them (spec §8.5). */
  args: Record<string, unknown>;
  node: NodeDict | undefined;
  ports: unknown[];
  kind: StepKind;
}

export type StepContext = AgentContext & {
  setProgress(progress: unknown): void;
  /** Aborted when the step runs past its timeout or the machine goes down: stop work, kill what you started. */
  readonly signal: AbortSignal;
};

/**
 * A step: data plus a function. `priority` may depend on the configuration (e.g.
 * inject_files_priority); `kinds` says for which step kinds the provider offers it, with
 * the priority Ironic should see for that kind.
 */
export interface StepDefinition {
  step: string;
  interface: StepInterface;
  kinds: Partial<Record<StepKind, { priority: number | ((ctx: AgentContext) => number); abortable?: boolean }>>;
  reboot_requested?: boolean;
  argsinfo?: Record<string, ArgSpec>;
  /**
   * Refuse `step.args` that argsinfo does not declare. IPA's own steps take undeclared
   * arguments (write_image's image_info), so built-in steps default to false; operator
   * plugins are always strict (spec §8.1: argsinfo is what Ironic validates user args with).
   */
  strictArgs?: boolean;
  /** Fail the step after this many seconds (the step's signal is aborted). None: no limit. */
  timeoutSeconds?: number;
  run(call: StepCall, ctx: StepContext): Promise<unknown>;
}

/** IPA's hardware-manager support levels (spec §8.2). */
export const SupportLevel = { NONE: 0, GENERIC: 1, MAINLINE: 2, SERVICE_PROVIDER: 3 } as const;

/**
 * A contributor of steps: IPA's hardware manager. `displayName` keys the get_*_steps
 * result (IPA uses the class name), `name`/`version` form hardware_manager_version.
 */
export interface StepProvider {
  displayName: string;
  name: string;
  version: string;
  supportLevel: number;
  steps: StepDefinition[];
  /** Where the provider comes from (an operator plugin's file), for messages. */
  origin?: string;
  /** Re-read what the steps depend on (e.g. a steps file named by the lookup) before use. */
  refresh?(ctx: AgentContext): Promise<void>;
}
