import {
  AgentError,
  cleaningError,
  deploymentError,
  invalidCommandParams,
  methodNotFound,
  servicingError,
} from '../errors.ts';
import type { CommandContext } from '../extensions/types.ts';
import { argsProblems } from './args.ts';
import type { NodeDict, StepKind } from './types.ts';

const WRAP_ERROR: Record<StepKind, (details: string) => AgentError> = {
  deploy: deploymentError,
  clean: cleaningError,
  service: servicingError,
};

export interface StepInvocation {
  kind: StepKind;
  name: string;
  /** The command's extra params with `step.args` over them (spec §8.5 step 4). */
  kwargs: Record<string, unknown>;
  /** `step.args` alone: what argsinfo describes. */
  stepArgs: Record<string, unknown>;
  node: NodeDict | undefined;
  ports: unknown;
}

/**
 * Runs one step for execute_<kind>_step (spec §8.5): the registry's winner for the name,
 * its arguments checked against argsinfo first, bounded by its timeout, and any error that
 * is not already an agent error wrapped as IPA wraps it, so that Ironic shows the step's own
 * message in last_error. A step can fail; it cannot take the agent down with it.
 */
export async function runStep(inv: StepInvocation, ctx: CommandContext): Promise<unknown> {
  const { kind, name } = inv;
  const found = ctx.steps.find(kind, name, ctx);
  if (!found) throw methodNotFound(name);
  const { definition, provider } = found;
  const problems = argsProblems(definition, inv.stepArgs);
  if (problems.length > 0) throw invalidCommandParams(`${kind} step ${name}: ${problems.join('; ')}`);

  const log = ctx.log.child({ kind, step: name, provider: provider.displayName });
  log.info({ origin: provider.origin }, `running ${kind} step ${name}`);
  if (definition.reboot_requested) {
    log.info(ctx.standalone ? 'the step requests a reboot, but no Ironic drives this agent: nothing will reboot it' : 'the step requests a reboot: Ironic reboots the node once it succeeds');
  }
  const abort = new AbortController();
  const timeout = definition.timeoutSeconds;
  let timer: NodeJS.Timeout | undefined;
  let machineDown: (() => void) | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    // A step that ignores its signal must not hold up a reboot: the dispatcher waits for us.
    machineDown = () => {
      const err = WRAP_ERROR[kind](`${kind} step ${name} was interrupted: ${String(ctx.signal.reason instanceof Error ? ctx.signal.reason.message : ctx.signal.reason)}`);
      abort.abort(err);
      reject(err);
    };
    if (ctx.signal.aborted) machineDown();
    else ctx.signal.addEventListener('abort', machineDown, { once: true });
    if (timeout === undefined) return;
    timer = setTimeout(() => {
      const err = WRAP_ERROR[kind](`${kind} step ${name} did not finish within its timeout of ${timeout} s${provider.origin ? ` (plugin ${provider.origin})` : ''}`);
      abort.abort(err);
      reject(err);
    }, timeout * 1000);
  });
  // Every tool the step starts is killed with it (timeout, machine down) unless it says otherwise.
  const run: CommandContext['run'] = (file, args, opts) => ctx.run(file, args, { signal: abort.signal, ...opts });
  const stepCtx = Object.assign(Object.create(ctx) as CommandContext, { signal: abort.signal, log, run });
  try {
    // Promise.resolve().then: a step that throws synchronously or returns a non-promise is handled alike.
    const running = Promise.resolve().then(() =>
      definition.run({ args: inv.kwargs, node: inv.node, ports: Array.isArray(inv.ports) ? inv.ports : [], kind }, stepCtx),
    );
    running.catch(() => undefined); // a step still running after its timeout may fail later: nobody listens
    const result = await Promise.race([running, timedOut]);
    return jsonSafe(result, kind, name);
  } catch (err) {
    if (err instanceof AgentError) throw err;
    const cls = err instanceof Error ? err.name : 'Error';
    const text = err instanceof Error ? err.message : String(err);
    throw WRAP_ERROR[kind](`Unexpected exception performing ${kind} step ${name}. ${cls}: ${text}`);
  } finally {
    clearTimeout(timer);
    if (machineDown) ctx.signal.removeEventListener('abort', machineDown);
    if (!abort.signal.aborted) abort.abort(new Error(`${kind} step ${name} has finished`));
  }
}

/** The result goes into the command log as JSON: a value that cannot be serialized fails the step, not the API. */
function jsonSafe(value: unknown, kind: StepKind, name: string): unknown {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch (err) {
    throw WRAP_ERROR[kind](`${kind} step ${name} returned a value that cannot be sent as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
