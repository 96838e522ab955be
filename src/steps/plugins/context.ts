import { listDisks } from '../../hardware/block-devices.ts';
import { rootDeviceHintsOf, selectRootDevice } from '../../hardware/root-device.ts';
import { writeImageTo } from '../../writers/prepare-image.ts';
import type { StepCall, StepContext } from '../types.ts';
import type { PluginContext } from './api.ts';

/**
 * The view of the agent a plugin step gets (api.ts PluginContext). Everything goes through
 * the agent's own services: tools through ctx.run (argument arrays, killed when the step
 * times out), disks through the same lister and root-device rules as the built-in steps,
 * and the disk guard, so a plugin cannot write a device the agent would refuse.
 */
export function pluginContext(step: string, call: StepCall, ctx: StepContext): PluginContext {
  const { signal } = ctx;
  const stillRunning = () => signal.throwIfAborted();
  return {
    kind: call.kind,
    step,
    node: call.node,
    ports: call.ports,
    log: ctx.log,
    config: ctx.config,
    signal,
    run: async (file, args, opts = {}) => {
      stillRunning();
      return ctx.run(file, args, { ...opts, signal });
    },
    disks: async () => {
      stillRunning();
      const restricted = ctx.diskGuard.allowlist.length > 0;
      const disks = await listDisks({ run: ctx.run }, { includeLoop: restricted });
      if (!restricted) return disks;
      const allowed = await Promise.all(disks.map((d) => ctx.diskGuard.allowed(d.name)));
      return disks.filter((_, i) => allowed[i]);
    },
    rootDevice: async () => {
      stillRunning();
      return selectRootDevice(ctx);
    },
    rootDeviceHints: rootDeviceHintsOf(call.node),
    checkDevice: async (device) => {
      // A step past its timeout may still be running: it must not start touching disks then.
      stillRunning();
      return ctx.diskGuard.check(device);
    },
    setProgress: (progress) => ctx.setProgress(progress),
    imageWriter: {
      writeImage: async (imageInfo, opts) => {
        stillRunning();
        const stop = opts.signal ? AbortSignal.any([signal, opts.signal]) : signal;
        return writeImageTo(Object.assign(Object.create(ctx) as StepContext, { signal: stop }), imageInfo, opts.device, opts.configdrive);
      },
    },
  };
}
