/**
 * Example operator plugin for ironic-node-agent (README "Operator plugins").
 *
 * It stands in for what a custom-agent deploy usually does in its own steps (write an
 * image, lay out partitions): `stamp_root_disk` writes a small JSON stamp at the start of
 * the root disk Ironic's root device hints choose, and `erase_stamp` removes it again as a
 * manual clean (or service) step. Copy it, keep the shape, replace the work.
 *
 * Only `import type` from the agent: Node strips it, so this file runs as it is from the
 * ramdisk's plugin directory, where the agent's sources are not.
 */
import { open } from 'node:fs/promises';
import type { PluginContext, PluginProvider } from '../../src/steps/plugins/api.ts';

const STAMP_BYTES = 4096;
const MAGIC = 'ironic-node-agent example stamp';

async function writeAtStart(device: string, data: Buffer): Promise<void> {
  const fh = await open(device, 'r+');
  try {
    await fh.write(data, 0, data.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

async function readStamp(device: string): Promise<Record<string, unknown> | undefined> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(STAMP_BYTES);
    await fh.read(buf, 0, STAMP_BYTES, 0);
    const text = buf.toString('utf8').replace(/\0+$/, '');
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && (parsed as { magic?: unknown }).magic === MAGIC ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/** The root disk, checked by the agent's disk guard: never write a device without this. */
async function targetDisk(ctx: PluginContext): Promise<string> {
  const disk = await ctx.rootDevice();
  return ctx.checkDevice(disk.name);
}

const provider: PluginProvider = {
  name: 'example_disk_stamp',
  version: '1.0',
  steps: [
    {
      step: 'stamp_root_disk',
      interface: 'deploy',
      // 61-79: in-band, after an image would have been written (spec §8.6).
      deploy: { priority: 75 },
      argsinfo: {
        site: { description: 'Site name written into the stamp', required: true, type: 'string' },
        owner: { description: 'Team that owns the machine', type: 'string' },
      },
      timeout: 120,
      async run(args, ctx) {
        const device = await targetDisk(ctx);
        const stamp = {
          magic: MAGIC,
          node: ctx.node?.uuid ?? null,
          site: args.site,
          owner: args.owner ?? null,
          written_at: new Date().toISOString(),
        };
        const data = Buffer.alloc(STAMP_BYTES);
        data.write(JSON.stringify(stamp), 'utf8');
        ctx.log.info({ device, site: args.site }, 'writing the site stamp');
        await writeAtStart(device, data);
        return { device, site: args.site };
      },
    },
    {
      step: 'erase_stamp',
      interface: 'deploy',
      clean: { priority: 0, abortable: true },
      service: { priority: 0, abortable: true },
      async run(_args, ctx) {
        const device = await targetDisk(ctx);
        const stamp = await readStamp(device);
        if (!stamp) {
          ctx.log.info({ device }, 'no stamp to erase');
          return { device, erased: false };
        }
        await writeAtStart(device, Buffer.alloc(STAMP_BYTES));
        ctx.log.info({ device, site: stamp.site }, 'stamp erased');
        return { device, erased: true, site: stamp.site };
      },
    },
  ],
};

export default provider;
