import { z } from 'zod';
import { invalidCommandParams } from '../errors.ts';
import { command, type Extension } from '../extensions/types.ts';
import type { StepDefinition } from '../steps/types.ts';
import { executeBootcInstall } from './deploy.ts';

/** IPA requires all three keys in the step's args; the values may be null (spec §8.4 table). */
const stepArgs = z.looseObject({
  image_source: z.string(),
  configdrive: z.string().nullable(),
  oci_pull_secret: z.string().nullable(),
});

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || 'args'}: ${i.message}`).join('; ');
}

/**
 * The deploy (and service) step Ironic's bootc interface calls at priority 80. The agent
 * offers it at priority 0 like IPA, so that it runs only when asked: at 80 every
 * custom-agent deploy would run it with no image.
 */
export const bootcSteps: StepDefinition[] = [
  {
    step: 'execute_bootc_install',
    interface: 'deploy',
    kinds: { deploy: { priority: 0 }, service: { priority: 0 } },
    argsinfo: {
      image_source: { description: 'oci:// URL of the bootc container image', required: true, type: 'string' },
      configdrive: { description: 'Config drive (base64 gzip ISO, or a URL to it)', required: false },
      oci_pull_secret: { description: 'Registry pull secret, base64 (as Ironic sends it)', required: false },
    },
    async run(call, ctx) {
      const parsed = stepArgs.safeParse(call.args);
      if (!parsed.success) throw invalidCommandParams(issues(parsed.error));
      const node = call.node ?? {};
      const instanceInfo = (node.instance_info ?? {}) as Record<string, unknown>;
      const message = await executeBootcInstall(ctx, {
        imageSource: parsed.data.image_source,
        configdrive: parsed.data.configdrive,
        pullSecret: parsed.data.oci_pull_secret,
        instanceInfo,
        nodeUuid: node.uuid,
      });
      return { result: `execute_bootc_install: ${message}` };
    },
  },
];

const commandParams = z.strictObject({
  image_source: z.string(),
  instance_info: z.record(z.string(), z.unknown()).default({}),
  pull_secret: z.string().nullish(),
  configdrive: z.string().nullish(),
});

/** `standby.execute_bootc_install` (spec §7, async): the same install as a command. */
export function bootcCommands(): Extension['commands'] {
  return {
    execute_bootc_install: command('async', commandParams, async (p, ctx) => {
      const message = await executeBootcInstall(ctx, {
        imageSource: p.image_source,
        configdrive: p.configdrive,
        pullSecret: p.pull_secret,
        instanceInfo: p.instance_info,
        nodeUuid: ctx.conductor.nodeUuid,
      });
      return { result: `execute_bootc_install: ${message}` };
    }),
  };
}
