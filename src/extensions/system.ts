import { z } from 'zod';
import { command, type Extension } from './types.ts';

/**
 * system.lockdown (spec §7.6): Ironic's way to end a deploy on a node with disable_power_off.
 * The answer goes out first; then the API and the heartbeat stop and every NIC goes down.
 */
export const systemExtension: Extension = {
  name: 'system',
  commands: {
    lockdown: command('sync', z.strictObject({}), async (_p, ctx) => {
      await ctx.power.request('lockdown');
      return null;
    }),
  },
};
