import { z } from 'zod';
import { invalidCommandParams } from '../errors.ts';
import type { BootMode, DiskLabel } from '../hardware/partition-layout.ts';
import type { NodeDict } from '../steps/types.ts';
import type { RawImageInfo } from './image-info.ts';

/**
 * What a partition image asks of the disk (spec §9.6): the sizes and options Ironic puts
 * into image_info, and the boot mode and disk label IPA takes from the cached node. Pure, so
 * every decision is unit-tested and a bad value is refused before the disk is touched.
 */
export interface PartitionImageSpec {
  rootMb: number;
  swapMb: number;
  ephemeralMb: number;
  ephemeralFormat: string | undefined;
  preserveEphemeral: boolean;
  bootMode: BootMode;
  diskLabel: DiskLabel;
}

/** Ironic casts these to int (parse_instance_info); a JSON client may still send "1024". */
const mib = z.unknown().transform((v, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) return Number(v);
  ctx.addIssue({ code: 'custom', message: `expected a whole number of MiB, got ${JSON.stringify(v)}` });
  return z.NEVER;
});
/** Ironic stores bool_from_string(strict=True) results; the strings it accepts are taken too. */
const flag = z.unknown().transform((v, ctx) => {
  if (typeof v === 'boolean') return v;
  const text = typeof v === 'string' ? v.trim().toLowerCase() : undefined;
  if (text !== undefined && ['true', '1', 'yes', 'on', 'y', 't'].includes(text)) return true;
  if (text !== undefined && ['false', '0', 'no', 'off', 'n', 'f'].includes(text)) return false;
  ctx.addIssue({ code: 'custom', message: `expected a boolean, got ${JSON.stringify(v)}` });
  return z.NEVER;
});

/** IPA reads root_mb, swap_mb, ephemeral_mb, ephemeral_format and preserve_ephemeral without defaults. */
const PartitionFields = z.object({
  root_mb: mib,
  swap_mb: mib,
  ephemeral_mb: mib,
  ephemeral_format: z.string().nullable(),
  preserve_ephemeral: flag,
});

/** Filesystems the ephemeral partition may get: what `mkfs -t` can make in the ramdisk. */
export const EPHEMERAL_FORMATS = ['ext2', 'ext3', 'ext4', 'xfs', 'vfat', 'btrfs'] as const;

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * `capabilities` as Ironic stores it: a dict, a JSON string, or `key1:val1,key2:val2`
 * (IPA's parse_capabilities); malformed entries are ignored as IPA ignores them.
 */
export function parseCapabilities(root: unknown): Record<string, string> {
  let caps: unknown = record(root).capabilities ?? {};
  if (typeof caps === 'string') {
    const text = caps;
    try {
      caps = JSON.parse(text);
    } catch {
      const parsed: Record<string, string> = {};
      for (const entry of text.split(',')) {
        const parts = entry.split(':');
        if (parts.length === 2 && parts[0] && parts[1]) parsed[parts[0]] = parts[1];
      }
      return parsed;
    }
  }
  return Object.fromEntries(Object.entries(record(caps)).map(([k, v]) => [k, String(v)]));
}

/**
 * IPA's get_node_boot_mode: secure boot means uefi; else instance_info.deploy_boot_mode, the
 * node's boot_mode capability, driver_internal_info.deploy_boot_mode, the ramdisk's own mode.
 * Unlike IPA, a value that is neither bios nor uefi is refused instead of silently replaced
 * by the ramdisk's mode: a partition layout for the wrong firmware does not boot.
 */
export function nodeBootMode(node: NodeDict | undefined, ramdiskMode: BootMode): BootMode {
  const instanceCaps = parseCapabilities(node?.instance_info);
  const nodeCaps = parseCapabilities(node?.properties);
  if ((instanceCaps.secure_boot ?? nodeCaps.secure_boot ?? 'false').toLowerCase() === 'true') return 'uefi';
  const [source, value] = firstDefined([
    ['instance_info.deploy_boot_mode', record(node?.instance_info).deploy_boot_mode],
    ['properties.capabilities.boot_mode', nodeCaps.boot_mode],
    ['driver_internal_info.deploy_boot_mode', record(node?.driver_internal_info).deploy_boot_mode],
  ]) ?? ['the ramdisk', ramdiskMode];
  const mode = String(value).toLowerCase();
  if (mode !== 'uefi' && mode !== 'bios') {
    throw invalidCommandParams(`Unknown boot mode ${JSON.stringify(value)} in the node's ${source}; expected "bios" or "uefi".`);
  }
  return mode;
}

/**
 * IPA's get_partition_table_type_from_specs: gpt for uefi, else the disk_label capability
 * (instance_info first), default msdos. IPA turns any other value into msdos; here it is
 * refused, since an operator who asked for "GPT" or "efi" did not ask for msdos.
 */
export function nodeDiskLabel(node: NodeDict | undefined, bootMode: BootMode): DiskLabel {
  if (bootMode === 'uefi') return 'gpt';
  const [source, value] = firstDefined([
    ['instance_info.capabilities.disk_label', parseCapabilities(node?.instance_info).disk_label],
    ['properties.capabilities.disk_label', parseCapabilities(node?.properties).disk_label],
  ]) ?? ['default', 'msdos'];
  const label = value.toLowerCase();
  if (label !== 'gpt' && label !== 'msdos') {
    throw invalidCommandParams(`Unknown disk label ${JSON.stringify(value)} in the node's ${source}; expected "gpt" or "msdos".`);
  }
  return label;
}

function firstDefined<T>(candidates: [string, T | undefined | null][]): [string, T] | undefined {
  for (const [source, value] of candidates) if (value !== undefined && value !== null && value !== '') return [source, value];
  return undefined;
}

/** The partition image's fields from image_info and the node; InvalidCommandParamsError before any write. */
export function partitionImageSpec(raw: RawImageInfo, node: NodeDict | undefined, ramdiskMode: BootMode): PartitionImageSpec {
  const parsed = PartitionFields.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.path.length === 1 && !(String(i.path[0]) in raw) ? 'missing' : i.message}`);
    throw invalidCommandParams(`A partition image needs root_mb, swap_mb, ephemeral_mb, ephemeral_format and preserve_ephemeral in image_info: ${problems.join('; ')}`);
  }
  const f = parsed.data;
  if (f.ephemeral_mb > 0 && !f.ephemeral_format) {
    throw invalidCommandParams('ephemeral_format must be set when ephemeral_mb is greater than 0');
  }
  if (f.ephemeral_mb > 0 && f.ephemeral_format && !(EPHEMERAL_FORMATS as readonly string[]).includes(f.ephemeral_format)) {
    throw invalidCommandParams(`Unsupported ephemeral_format ${JSON.stringify(f.ephemeral_format)}; expected one of ${EPHEMERAL_FORMATS.join(', ')}`);
  }
  const bootMode = nodeBootMode(node, ramdiskMode);
  return {
    rootMb: f.root_mb,
    swapMb: f.swap_mb,
    ephemeralMb: f.ephemeral_mb,
    ephemeralFormat: f.ephemeral_format ?? undefined,
    preserveEphemeral: f.preserve_ephemeral,
    bootMode,
    diskLabel: nodeDiskLabel(node, bootMode),
  };
}
