import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { StepDefinition } from '../steps/types.ts';

/** The pstore mount point from /proc/mounts (`pstore <dir> pstore ...`), if any. */
export function findPstoreMount(procMounts: string): string | undefined {
  for (const line of procMounts.split('\n')) {
    const m = /^pstore (\S+) pstore /.exec(line);
    if (m) return m[1]!.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
  }
  return undefined;
}

/**
 * erase_pstore: crash records the firmware kept from the previous tenant's kernels (panic
 * logs can hold memory contents). Deletes everything in the pstore mount, as IPA does.
 */
export async function erasePstore(mountsFile = '/proc/mounts'): Promise<{ pstore: string | null; removed: string[] }> {
  const dir = findPstoreMount(await readFile(mountsFile, 'utf8'));
  if (!dir) return { pstore: null, removed: [] };
  const entries = await readdir(dir);
  for (const entry of entries) await rm(join(dir, entry), { recursive: true, force: true });
  return { pstore: dir, removed: entries.sort() };
}

export const pstoreStep: StepDefinition = {
  step: 'erase_pstore',
  interface: 'deploy',
  kinds: { clean: { priority: 0, abortable: true } },
  run: async (_call, ctx) => {
    const result = await erasePstore();
    ctx.log.info(result, result.pstore ? 'pstore erased' : 'no pstore mounted');
    return result;
  },
};
