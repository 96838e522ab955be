import { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';
import { deploymentError } from '../errors.ts';
import { readDiskIdentifier } from '../writers/partition-table.ts';

const ESP_TYPE = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
const Sfdisk = z.object({
  partitiontable: z.object({
    label: z.string(),
    partitions: z.array(z.object({ node: z.string(), type: z.string(), uuid: z.string().optional(), name: z.string().optional() }).loose()).default([]),
  }).loose(),
});

/**
 * Re-reads the table bootc wrote. `partx -u` is unreliable after a re-partition (the kernel
 * refuses overlapping ranges and leaves a half-updated set, spec/bootc.md §6): delete, then add.
 */
export async function reloadPartitions(ctx: AgentContext, device: string): Promise<void> {
  await ctx.run('partx', ['-d', device]).catch(() => undefined);
  await ctx.run('partx', ['-a', device]).catch((err: Error) => ctx.log.warn({ device, err: err.message }, 'partx could not add the partitions'));
}

async function readTable(ctx: AgentContext, device: string) {
  try {
    return Sfdisk.parse(JSON.parse(await ctx.run('sfdisk', ['--json', device]))).partitiontable;
  } catch (err) {
    throw deploymentError(`bootc install left no readable partition table on ${device}: ${(err as Error).message}`);
  }
}

/** IPA checks for at least one partition (spec §7.7 step 10); a bootc layout also has an ESP. */
export async function checkInstalledTable(ctx: AgentContext, device: string): Promise<void> {
  const table = await readTable(ctx, device);
  if (table.partitions.length === 0) throw deploymentError(`bootc install left no partitions on ${device}`);
  ctx.log.info({ device, label: table.label, partitions: table.partitions.map((p) => ({ node: p.node, name: p.name, type: p.type })) }, 'bootc partition layout');
}

/**
 * What get_partition_uuids reports for a whole-disk install (spec §9.8): the disk identifier
 * as `root uuid`, and the ESP's partition UUID, which Ironic passes to install_bootloader.
 */
export async function partitionUuids(ctx: AgentContext, device: string): Promise<Record<string, string | null>> {
  const table = await readTable(ctx, device);
  const esp = table.partitions.find((p) => p.type.toLowerCase() === ESP_TYPE);
  return {
    'root uuid': await readDiskIdentifier(device),
    ...(esp?.uuid ? { 'efi system partition uuid': esp.uuid.toLowerCase() } : {}),
  };
}
