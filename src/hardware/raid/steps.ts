import { invalidCommandParams } from '../../errors.ts';
import type { StepCall, StepContext, StepDefinition } from '../../steps/types.ts';
import { createConfiguration } from './create.ts';
import { deleteConfiguration } from './delete.ts';
import { parseRaidConfig, validateRaidConfig } from './config.ts';
import { raidCandidateDisks } from './discover.ts';

/** IPA's RAID_APPLY_CONFIGURATION_ARGSINFO, word for word (Ironic shows it to operators). */
const APPLY_ARGSINFO = {
  raid_config: { description: 'The RAID configuration to apply.', required: true, type: 'object' },
  delete_existing: {
    description: "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'.",
    required: false,
    type: 'boolean',
  },
} as const;

/** create_configuration: the node's target_raid_config; `{}` when there is none (IPA). */
async function createStep(call: StepCall, ctx: StepContext): Promise<unknown> {
  const target = call.node?.target_raid_config;
  if (target === undefined || target === null || (typeof target === 'object' && Object.keys(target).length === 0)) {
    ctx.log.debug('no target_raid_config found');
    return {};
  }
  return createConfiguration(ctx, call.node, target);
}

/**
 * delete_configuration. IPA returns None, and Ironic's post-step hook only clears
 * node.raid_config; the decisions per array are in the log.
 */
async function deleteStep(call: StepCall, ctx: StepContext): Promise<null> {
  await deleteConfiguration(ctx, call.node);
  return null;
}

/** apply_configuration(raid_config, delete_existing=True): validate first, so a bad config deletes nothing. */
async function applyStep(call: StepCall, ctx: StepContext): Promise<unknown> {
  const raw = call.args.raid_config;
  const deleteExisting = call.args.delete_existing ?? true;
  if (typeof deleteExisting !== 'boolean') throw invalidCommandParams(`delete_existing must be a boolean, got ${JSON.stringify(deleteExisting)}`);
  validateRaidConfig(parseRaidConfig(raw), call.node, (await raidCandidateDisks(ctx, call.node)).length);
  if (deleteExisting) await deleteConfiguration(ctx, call.node);
  return createConfiguration(ctx, call.node, raw);
}

/** The raid interface steps of IPA's GenericHardwareManager: clean, deploy and service as IPA offers them (spec §11.5). */
export const raidSteps: StepDefinition[] = [
  {
    step: 'delete_configuration',
    interface: 'raid',
    kinds: { clean: { priority: 0, abortable: true }, service: { priority: 0, abortable: true } },
    run: deleteStep,
  },
  {
    step: 'create_configuration',
    interface: 'raid',
    kinds: { clean: { priority: 0, abortable: true }, service: { priority: 0, abortable: true } },
    run: createStep,
  },
  {
    step: 'apply_configuration',
    interface: 'raid',
    kinds: { deploy: { priority: 0 }, service: { priority: 0 } },
    argsinfo: APPLY_ARGSINFO,
    run: applyStep,
  },
];
