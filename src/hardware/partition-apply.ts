import { deploymentError } from '../errors.ts';
import { ToolError, type RunCommand } from '../run.ts';
import type { DiskGuard } from './disk-guard.ts';
import { kernelPartitions, logicalSectorSize } from './partitions.ts';
import { partitionPath, sfdiskScript, sgdiskArgs, type Layout, type Role } from './partition-layout.ts';

export interface ApplyDeps {
  run: RunCommand;
  diskGuard: DiskGuard;
  sysRoot?: string;
}

/**
 * Write a planned layout (spec §9.6) onto `device`: the guard first, then (unless preserving
 * the ephemeral partition, which keeps the table) the old signatures are wiped, the table is written in one sgdisk or
 * sfdisk call, and the kernel is told about the partitions with `partx` (no udev, and on this
 * project's test kernel no partition parser). Returns the partition path of each role, checked
 * against what the kernel registered.
 */
export async function applyLayout(deps: ApplyDeps, device: string, layout: Layout, opts: { preserveEphemeral?: boolean } = {}): Promise<Partial<Record<Role, string>>> {
  const dev = await deps.diskGuard.check(device);
  try {
    // preserve_ephemeral keeps the existing table as it is (IPA builds the parted command but
    // does not commit it), so the planned partitions must already be there.
    if (opts.preserveEphemeral) {
      // nothing written
    } else if (layout.label === 'gpt') {
      await deps.run('wipefs', ['--all', '--force', dev]);
      await deps.run('sgdisk', ['--zap-all', dev]);
      await deps.run('sgdisk', sgdiskArgs(dev, layout));
    } else {
      await deps.run('wipefs', ['--all', '--force', dev]);
      // A partition image's root is already written when the table is: never wipe inside partitions.
      await deps.run('sfdisk', ['--quiet', '--wipe', 'always', '--wipe-partitions', 'never', dev], {
        input: sfdiskScript(layout, await logicalSectorSize(dev, deps.sysRoot)),
      });
    }
    // partx -u updates existing entries; -a adds the new ones. Either may report "nothing to do".
    await deps.run('partx', ['-d', dev]).catch(() => undefined);
    await deps.run('partx', ['-a', dev]).catch(() => undefined);
  } catch (err) {
    if (err instanceof ToolError) throw deploymentError(`writing the partition table on ${dev} failed: ${err.message}`);
    throw err;
  }
  const known = new Set((await kernelPartitions(dev, deps.sysRoot)).map((p) => p.number));
  const paths: Partial<Record<Role, string>> = {};
  for (const p of layout.partitions) {
    if (!known.has(p.number)) throw deploymentError(`partition ${p.number} (${p.role}) of ${dev} did not appear after the table was written`);
    paths[p.role] = partitionPath(dev, p.number);
  }
  return paths;
}
