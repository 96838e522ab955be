import type { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';

/** IPA runs some commands to completion in the request, others in the background (spec §6.6). */
export type CommandMode = 'sync' | 'async';

export type CommandContext = AgentContext & {
  /** The bare command name, e.g. `execute_deploy_step`. */
  readonly commandName: string;
  /** Progress of a running async command, shown in its result while it runs. */
  setProgress(progress: unknown): void;
  /**
   * Aborted when the machine goes down (a simulated reboot, or the agent stopping): long
   * commands must stop promptly, as a real power-off would stop them.
   */
  readonly signal: AbortSignal;
};

export interface CommandSpec {
  readonly mode: CommandMode;
  /** Validates and types the `params` object; a failure is HTTP 400 and nothing is recorded. */
  readonly params: z.ZodType;
  /**
   * Checks that need the agent's state (e.g. lookup settings), after the schema; throwing an
   * InvalidCommandParamsError here is a 400 with nothing recorded, like a schema failure.
   */
  validate?(params: unknown, ctx: AgentContext): void;
  /** Called only with what `params` produced. */
  run(params: unknown, ctx: CommandContext): Promise<unknown>;
}

/** A named group of commands; `<extension>.<command>` on the wire (spec §7). */
export interface Extension {
  readonly name: string;
  readonly commands: Readonly<Record<string, CommandSpec>>;
}

/** Declares a command with its parameter schema, keeping the run function typed. */
export function command<S extends z.ZodType>(
  mode: CommandMode,
  params: S,
  run: (params: z.output<S>, ctx: CommandContext) => Promise<unknown>,
  opts: { validate?: (params: z.output<S>, ctx: AgentContext) => void } = {},
): CommandSpec {
  const validate = opts.validate;
  return {
    mode,
    params,
    run: (p, ctx) => run(p as z.output<S>, ctx),
    ...(validate ? { validate: (p: unknown, ctx: AgentContext) => validate(p as z.output<S>, ctx) } : {}),
  };
}
