import { z } from 'zod';
import { invalidCommandParams } from '../errors.ts';
import type { StepDefinition } from '../steps/types.ts';
import { ImageInfoSchema, validateImageInfo } from '../writers/image-info.ts';
import { imageSettings } from '../writers/image-download.ts';
import { prepareImage } from '../writers/prepare-image.ts';
import { command, type Extension } from './types.ts';

const prepareParams = z.strictObject({
  image_info: ImageInfoSchema.optional(),
  configdrive: z.string().nullish(),
});
const cacheParams = prepareParams.extend({ force: z.boolean().optional() });

/**
 * standby.prepare_image and standby.cache_image (spec §7.1): validated as IPA validates
 * image_info (400, nothing recorded), then run in the background. cache_image was removed
 * from IPA in 2023; it is served for callers that still use it: the same write, its own
 * messages ("cached to" / "already present on").
 */
export function standbyImageCommands(): Extension['commands'] {
  return {
    prepare_image: command('async', prepareParams, (params, ctx) => prepareImage(ctx, params, 'prepare'), {
      validate: (params, ctx) => void validateImageInfo(params.image_info, imageSettings(ctx)),
    }),
    cache_image: command('async', cacheParams, (params, ctx) => prepareImage(ctx, params, 'cache'), {
      validate: (params, ctx) => void validateImageInfo(params.image_info, imageSettings(ctx)),
    }),
  };
}

const writeImageArgs = z.looseObject({ image_info: ImageInfoSchema.optional(), configdrive: z.string().nullish() });

/**
 * The in-band `write_image` deploy (and service) step of IPA's GenericHardwareManager
 * (spec §8.4, §8.5): what Ironic's `direct` interface runs at priority 80 out of band. It
 * runs prepare_image and returns its result as IPA does, `{"result": "prepare_image: ..."}`.
 */
export const imageSteps: StepDefinition[] = [
  {
    step: 'write_image',
    interface: 'deploy',
    kinds: { deploy: { priority: 0 }, service: { priority: 0 } },
    async run(call, ctx) {
      const parsed = writeImageArgs.safeParse(call.args);
      if (!parsed.success) throw invalidCommandParams(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      const message = await prepareImage(ctx, parsed.data, 'prepare');
      return { result: `prepare_image: ${message}` };
    },
  },
];
