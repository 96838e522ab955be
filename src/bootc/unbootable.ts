import { open } from 'node:fs/promises';
import type { AgentContext } from '../agent-context.ts';

const MiB = 2 ** 20;

/**
 * Zeroes the device's first and last MiB (protective MBR, both GPT copies): after a bootc
 * install that failed or could not be finished (validation, config drive), the half-written
 * layout must never boot (DESIGN.md "Never bootable until verified"; IPA leaves it as is).
 * Best effort: the original error is what the caller reports.
 */
export async function makeUnbootable(ctx: AgentContext, device: string): Promise<void> {
  try {
    const fh = await open(device, 'r+');
    try {
      const { size } = await fh.stat().then(async (st) => (st.size > 0 ? st : { size: Number(await ctx.run('blockdev', ['--getsize64', device])) }));
      const zero = Buffer.alloc(MiB);
      await fh.write(zero, 0, Math.min(MiB, size), 0);
      if (size > MiB) await fh.write(zero, 0, MiB, size - MiB);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await ctx.run('partx', ['-d', device]).catch(() => undefined);
    ctx.log.warn({ device }, 'bootc install did not finish: partition tables wiped so the disk cannot boot');
  } catch (err) {
    ctx.log.error({ device, err: (err as Error).message }, 'could not wipe the partition tables after a failed bootc install');
  }
}
