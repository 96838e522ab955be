import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { hardwareManagerConfigurationError as configurationError, versionMismatch } from '../errors.ts';
import { runStep } from '../steps/engine.ts';
import type { NodeDict, StepKind } from '../steps/types.ts';
import { command, type CommandContext, type Extension } from './types.ts';

/** Steps are listed or run only when every provider loaded (see StepRegistry.loadProblems). */
async function readySteps(ctx: CommandContext): Promise<void> {
  const problems = ctx.steps.loadProblems;
  if (problems.length > 0) {
    const err = configurationError(`operator plugins failed to load, so the agent offers no steps until they are fixed: ${problems.join('; ')}`);
    // Over HTTP, so that Ironic puts the reason into last_error instead of a TypeError.
    err.overHttp = true;
    throw err;
  }
  await ctx.steps.refresh(ctx);
}

const node = z.record(z.string(), z.unknown()).optional();
/** Ironic sends a list; IPA's own tests send `{}`. Neither is read by the built-in steps. */
const ports = z.union([z.array(z.unknown()), z.record(z.string(), z.unknown())]).optional();

const stepDict = z.looseObject({
  step: z.string().min(1),
  interface: z.string().optional(),
  args: z.record(z.string(), z.unknown()).nullish(),
});

/**
 * `<kind>.get_<kind>_steps` and `<kind>.execute_<kind>_step` for deploy, clean and service
 * (spec §8.5). The conductor gets the deduplicated steps keyed by provider, and every step
 * result echoes the step as received, which is how Ironic recognises its completion (§8.7).
 */
export function stepsExtension(kind: StepKind): Extension {
  const versionKey = `${kind}_version`;
  const getSteps = command('sync', z.looseObject({ node, ports }), async (params, ctx) => {
    ctx.conductor.cacheNode(params.node as NodeDict | undefined);
    await readySteps(ctx);
    return {
      [`${kind}_steps`]: ctx.steps.stepsFor(kind, ctx),
      hardware_manager_version: ctx.steps.versions(),
    };
  });

  const executeStep = command(
    'async',
    z.looseObject({ step: stepDict, node, ports }).superRefine((params, issue) => {
      const v = params[versionKey];
      if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v))) {
        issue.addIssue({ code: 'custom', path: [versionKey], message: 'expected an object of {manager: version}' });
      }
    }),
    async (params, ctx) => {
      const { step, node: nodeDict, ports: portList, ...kwargs } = params;
      const usedVersions = kwargs[versionKey] as Record<string, unknown> | null | undefined;
      delete kwargs[versionKey];
      ctx.conductor.cacheNode(nodeDict as NodeDict | undefined);
      const current = ctx.steps.versions();
      if (usedVersions && Object.keys(usedVersions).length > 0 && !isDeepStrictEqual(usedVersions, current)) {
        throw versionMismatch(current, usedVersions);
      }
      await readySteps(ctx);
      const stepArgs = step.args ?? {};
      const result = await runStep(
        { kind, name: step.step, kwargs: { ...kwargs, ...stepArgs }, stepArgs, node: nodeDict as NodeDict | undefined, ports: portList },
        ctx,
      );
      return { [`${kind}_result`]: result ?? null, [`${kind}_step`]: step };
    },
  );

  return {
    name: kind,
    commands: { [`get_${kind}_steps`]: getSteps, [`execute_${kind}_step`]: executeStep },
  };
}
