import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentContext } from '../agent-context.ts';

/**
 * IPA's fallback for disks whose sectors are larger than ISO 9660's 2 KiB (spec §9.7 step 6):
 * the config drive becomes a vfat filesystem labelled `CONFIG-2` with the ISO's files. Done
 * without mounting anything (isoinfo reads the ISO, mtools writes the vfat), so it also
 * works where the kernel lacks iso9660 or vfat.
 */
export async function rebuildConfigDriveAsVfat(ctx: AgentContext, partition: string, iso: Buffer): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ina-configdrive-'));
  try {
    const isoFile = join(dir, 'configdrive.iso');
    await writeFile(isoFile, iso);
    const paths = (await ctx.run('isoinfo', ['-R', '-f', '-i', isoFile])).split('\n').filter((p) => p.startsWith('/'));
    const listing = await ctx.run('isoinfo', ['-R', '-l', '-i', isoFile]);
    const dirs = new Set([...listing.matchAll(/^Directory listing of (.*)\/\s*$/gm)].map((m) => m[1]!).filter((d) => d !== ''));
    ctx.log.info({ partition, files: paths.length - dirs.size }, 'rebuilding the config drive as vfat CONFIG-2');
    await ctx.run('mkfs.fat', ['-n', 'CONFIG-2', partition]);
    // mtools checks the geometry of real floppies; a partition has none.
    const env = { MTOOLS_SKIP_CHECK: '1' };
    for (const d of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
      await ctx.run('mmd', ['-i', partition, `::${d}`], { env });
    }
    const { execa } = await import('execa');
    let n = 0;
    for (const path of paths) {
      if (dirs.has(path)) continue;
      const local = join(dir, `file-${n++}`);
      const { stdout } = await execa('isoinfo', ['-R', '-i', isoFile, '-x', path], { encoding: 'buffer' });
      await writeFile(local, stdout);
      await ctx.run('mcopy', ['-i', partition, local, `::${path}`], { env });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
