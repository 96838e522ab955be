import type { AgentContext } from '../../src/agent-context.ts';
import { resolveConfig } from '../../src/config.ts';
import { ConductorState } from '../../src/conductor/state.ts';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { cleaningSteps } from '../../src/hardware/cleaning-steps.ts';
import { runCommand, type RunCommand } from '../../src/run.ts';
import type { NodeDict, StepKind } from '../../src/steps/types.ts';
import { memoryLogger } from './logger.ts';

/** A step context with the real tools, a real disk guard over `allow`, and a memory log. */
export function stepContext(allow: string[], opts: { run?: RunCommand; flags?: Record<string, string | boolean> } = {}) {
  const logger = memoryLogger();
  const config = resolveConfig({ kernelParams: new Map(), flags: { ...opts.flags } });
  const ctx = {
    config,
    run: opts.run ?? runCommand,
    log: logger.log,
    conductor: new ConductorState(),
    diskGuard: new DiskGuard({ allowDevices: allow }),
    deployment: { partitionUuids: {} },
    refreshNode: async () => undefined,
    setProgress: () => undefined,
  } as unknown as AgentContext & { setProgress(p: unknown): void };
  return { ctx, logs: logger.lines };
}

/** Runs a built-in cleaning step as execute_clean_step would, with `node` as sent by Ironic. */
export async function runStep(
  ctx: AgentContext & { setProgress(p: unknown): void },
  step: string,
  node: NodeDict,
  args: Record<string, unknown> = {},
  kind: StepKind = 'clean',
): Promise<unknown> {
  const def = cleaningSteps.find((s) => s.step === step && s.kinds[kind]);
  if (!def) throw new Error(`no ${kind} step ${step}`);
  const stepCtx = Object.assign(Object.create(ctx) as typeof ctx, { signal: new AbortController().signal });
  return def.run({ args, node, ports: [], kind }, stepCtx);
}
