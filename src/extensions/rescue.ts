import { z } from 'zod';
import { finalizeRescue } from '../rescue/finalize.ts';
import { rescuePaths } from '../rescue/paths.ts';
import { command, type Extension } from './types.ts';

const finalizeParams = z
  .strictObject({
    rescue_password: z.string().default(''),
    hashed: z.boolean().default(false),
  })
  // A hash goes into a shadow line as it is: a ':' or a newline would forge other fields.
  .refine((p) => !p.hashed || !/[:\n\r]/.test(p.rescue_password), {
    message: 'a hashed rescue_password cannot contain ":" or a line break',
    path: ['rescue_password'],
  });

/**
 * rescue.finalize_rescue (spec §7.5): set the rescue password, then stop serving the API and
 * heartbeating once the answer is out. Ironic then moves the node to its tenant network.
 */
export const rescueExtension: Extension = {
  name: 'rescue',
  commands: {
    finalize_rescue: command('sync', finalizeParams, async (p, ctx) => {
      await finalizeRescue({ value: p.rescue_password, hashed: p.hashed }, rescuePaths(ctx.config), ctx.log);
      ctx.enterRescue();
      return null;
    }),
  },
};
