import type { AgentContext } from '../agent-context.ts';
import { readPartitionTable } from '../hardware/partitions.ts';
import { mdArrays } from '../hardware/raid/mdadm.ts';
import { parseFirstUsableSector } from '../hardware/raid/plan.ts';
import { rescanPartitions } from './esp.ts';

/**
 * The BIOS boot partitions of a software RAID root, as IPA's
 * raid_utils.prepare_boot_partitions_for_softraid makes them for a BIOS target. grub for BIOS
 * is installed on every holder disk, and on a GPT disk grub-install embeds its core.img in a
 * BIOS boot partition: without one it refuses ("embedding is not possible, but this is
 * required for RAID and LVM install"). On an MBR disk core.img goes into the gap after the
 * MBR, which create_configuration leaves in front of the members, so nothing is made there.
 */

/** The GPT type GUID of a BIOS boot partition (sgdisk's ef02). */
export const BIOS_BOOT_TYPE = '21686148-6449-6E6F-744E-656564454649';

/** IPA's PARTLABEL of the BIOS boot partition on holder `index`. */
export const biosBootPartitionName = (index: number): string => `bios-boot-part-${index}`;

/** IPA's sgdisk call: 2 MiB of type ef02 from the first free sector, named for its holder. */
export function sgdiskBiosBootArgs(holder: string, firstFreeSector: number, index: number): string[] {
  return ['-n', `0:${firstFreeSector}s:+2MiB`, '-t', '0:ef02', '-c', `0:${biosBootPartitionName(index)}`, holder];
}

/**
 * A BIOS boot partition on every GPT holder that has none. Unlike IPA, which adds one at
 * every install_bootloader, a holder that has one already (an earlier call, a rebuild) is
 * left as it is: grub-install uses the first it finds, a second would only take space.
 * Each holder passes the disk guard with the running md arrays as expected holders: sgdisk
 * only adds a partition in free space beside their members.
 */
export async function ensureBiosBootPartitions(ctx: AgentContext, holders: readonly string[], opts: { procRoot?: string }): Promise<void> {
  const arrays = (await mdArrays(opts.procRoot)).map((a) => a.device);
  for (const [index, holder] of holders.entries()) {
    await ctx.diskGuard.check(holder, { heldBy: arrays });
    const table = await readPartitionTable(ctx.run, holder);
    if (table?.label !== 'gpt') {
      ctx.log.debug({ holder, label: table?.label ?? 'none' }, `${holder} has no GPT; grub embeds its core image after the MBR`);
      continue;
    }
    const existing = table.partitions.find((p) => p.type.toUpperCase() === BIOS_BOOT_TYPE);
    if (existing) {
      ctx.log.info({ holder, partition: existing.node }, `${holder} has a BIOS boot partition already (${existing.node})`);
      continue;
    }
    // -F: the aligned start of the largest free block; the 8 MiB gap create_configuration
    // leaves in front of the members on a GPT disk when a MAX volume fills the rest.
    const first = parseFirstUsableSector(await ctx.run('sgdisk', ['-F', holder]));
    ctx.log.info({ holder, start: first, name: biosBootPartitionName(index) }, `Creating bios boot partition on disk holder ${holder}`);
    await ctx.run('sgdisk', sgdiskBiosBootArgs(holder, first, index));
    await rescanPartitions(ctx.run, holder);
  }
}
