import { z } from 'zod';
import { softwareRaidError } from '../../errors.ts';
import type { NodeDict } from '../../steps/types.ts';

/**
 * A logical disk of Ironic's target_raid_config as far as software RAID reads it (spec §11.5,
 * Ironic's raid_config_schema.json). Other keys (disk_type, share_physical_disks...) are kept
 * and ignored, as IPA ignores them; the result sent back to Ironic is the config as given.
 */
const LogicalDiskSchema = z.looseObject({
  size_gb: z.union([z.number().int().nonnegative(), z.literal('MAX')]),
  raid_level: z.string(),
  controller: z.string().nullish(),
  volume_name: z.string().min(1).nullish(),
  is_root_volume: z.boolean().nullish(),
  physical_disks: z.unknown().optional(),
});
export type LogicalDisk = z.output<typeof LogicalDiskSchema>;

const RaidConfigSchema = z.looseObject({ logical_disks: z.array(LogicalDiskSchema).nullish() });
export type RaidConfig = z.output<typeof RaidConfigSchema>;

/** IPA's SUPPORTED_SOFTWARE_RAID_LEVELS; `1+0` is mdadm's level 10. */
export const SOFTWARE_RAID_LEVELS = ['0', '1', '1+0', '5', '6'] as const;

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** The config parsed once at the boundary; a shape Ironic's schema would refuse is a SoftwareRAIDError. */
export function parseRaidConfig(raw: unknown): RaidConfig {
  const parsed = RaidConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'raid_config'}: ${i.message}`);
    throw softwareRaidError(`Invalid software RAID configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/**
 * Volume names of md devices that must survive delete_configuration: the `volume_name`
 * entries of `properties.skip_block_devices` (IPA's get_skip_list_from_node_for_raids).
 * Undefined when there are none, as IPA's None: the skip-list logic then stays out of the way.
 */
export function raidSkipList(node: NodeDict | undefined): Set<string> | undefined {
  const hints = record(node?.properties)?.skip_block_devices;
  if (!Array.isArray(hints)) return undefined;
  const names = new Set<string>();
  for (const hint of hints) {
    const name = record(hint)?.volume_name;
    if (typeof name === 'string') names.add(name);
  }
  return names.size > 0 ? names : undefined;
}

/**
 * IPA's validate_configuration: every rule it checks, with its messages, collected and raised
 * as one SoftwareRAIDError naming the node. `physicalDeviceCount` is the number of disks
 * the agent sees (RAID-5 needs 3, RAID-6 needs 4). Returns false for an empty config, as IPA.
 */
export function validateRaidConfig(config: RaidConfig, node: NodeDict | undefined, physicalDeviceCount: number): boolean {
  if (Object.keys(config).length === 0) return false;
  const disks = config.logical_disks ?? [];
  if (disks.length === 0) throw softwareRaidError('RAID config contains no logical disks');

  const errors: string[] = [];
  if (disks.length !== 1 && disks.length !== 2) errors.push('Software RAID configuration requires one or two logical disks');
  const skipList = raidSkipList(node);
  const volumeNames: string[] = [];
  let rootSelected = false;
  for (const disk of disks) {
    if (disk.controller !== 'software') {
      errors.push("Software RAID configuration requires all logical disks to have 'controller'='software'");
    }
    const name = disk.volume_name ?? undefined;
    if (name === undefined) {
      if (skipList) {
        errors.push('All logical disks are required to have a volume name specified as a volume name is mentioned in the property skip block devices.');
      }
    } else if (volumeNames.includes(name)) {
      errors.push(`Duplicate software RAID device name ${name} detected`);
    } else {
      volumeNames.push(name);
    }
    if (disk.is_root_volume) {
      if (rootSelected) errors.push('Software RAID configuration allows only one logical disk to be marked as is_root_volume');
      else rootSelected = true;
    }
    const physical = disk.physical_disks;
    if (physical !== undefined && physical !== null) {
      if (!Array.isArray(physical) || physical.length < 2) {
        errors.push('The physical_disks parameter for software RAID must be a list with at least 2 items, each specifying a disk in the device hints format');
      }
      if (Array.isArray(physical) && physical.some((item) => record(item) === undefined)) {
        errors.push('The physical_disks parameter for software RAID must be a list of device hints (dictionaries)');
      }
    }
  }
  // IPA's rule: the first md device is a mirror, so the disk the machine boots from survives a failed member.
  if (disks[0]!.raid_level !== '1') errors.push('Software RAID Configuration requires RAID-1 for the first logical disk');
  if (disks.length === 2) {
    const [first, second] = [disks[0]!, disks[1]!];
    if (first.size_gb === 'MAX' && second.size_gb === 'MAX') errors.push("Software RAID can have only one RAID device with size 'MAX'");
    const level = second.raid_level;
    if (!(SOFTWARE_RAID_LEVELS as readonly string[]).includes(level)) errors.push(`Software RAID configuration does not support RAID level ${level}`);
    if (level === '5' && physicalDeviceCount < 3) {
      errors.push(`Software RAID configuration is not possible for RAID level 5 with only ${physicalDeviceCount} block devices found.`);
    }
    if (level === '6' && physicalDeviceCount < 4) {
      errors.push(`Software RAID configuration is not possible for RAID level 6 with only ${physicalDeviceCount} block devices found.`);
    }
  }
  if (errors.length > 0) {
    throw softwareRaidError(`Could not validate Software RAID config for ${node?.uuid ?? 'the node'}: ${errors.join('; ')}`);
  }
  return true;
}

/** create_configuration works on the logical disks whose controller is `software`; none means nothing to do. */
export function softwareLogicalDisks(config: RaidConfig): LogicalDisk[] {
  return (config.logical_disks ?? []).filter((d) => d.controller === 'software');
}
