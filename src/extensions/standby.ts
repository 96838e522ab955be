import { z } from 'zod';
import { command, type Extension } from './types.ts';

const noParams = z.strictObject({});

/**
 * standby: the commands around putting an image on the machine (spec §7). This file holds
 * the power and sync commands; the image writer adds prepare_image and friends.
 */
export function standbyExtension(extra: Extension['commands'] = {}): Extension {
  return {
    name: 'standby',
    commands: {
      // Power commands are async in IPA: the result is seldom observed, the machine goes down (spec §7.2).
      power_off: command('async', noParams, async (_p, ctx) => {
        await ctx.power.request('power_off');
        return null;
      }),
      run_image: command('async', noParams, async (_p, ctx) => {
        await ctx.power.request('reboot');
        return null;
      }),
      sync: command('sync', noParams, async (_p, ctx) => {
        await ctx.power.sync();
        return null;
      }),
      get_partition_uuids: command('sync', noParams, async (_p, ctx) => ctx.deployment.partitionUuids),
      ...extra,
    },
  };
}
