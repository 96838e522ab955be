import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkMkfsTools, mkfsPlan } from '../../src/hardware/partition-format.ts';
import { nodeBootMode, nodeDiskLabel, parseCapabilities, partitionImageSpec } from '../../src/writers/partition-image-info.ts';

const fields = { root_mb: 10240, swap_mb: 512, ephemeral_mb: 0, ephemeral_format: null, preserve_ephemeral: false };

describe('capabilities as Ironic stores them (IPA parse_capabilities)', () => {
  test('a dict, a JSON string, or key:value pairs; malformed pairs are ignored', () => {
    expect(parseCapabilities({ capabilities: { boot_mode: 'uefi', secure_boot: true } })).toEqual({ boot_mode: 'uefi', secure_boot: 'true' });
    expect(parseCapabilities({ capabilities: '{"disk_label": "gpt"}' })).toEqual({ disk_label: 'gpt' });
    expect(parseCapabilities({ capabilities: 'boot_mode:bios,disk_label:gpt,broken,a:b:c' })).toEqual({ boot_mode: 'bios', disk_label: 'gpt' });
    expect(parseCapabilities({})).toEqual({});
    expect(parseCapabilities(undefined)).toEqual({});
  });
});

describe('boot mode of a partition deploy (IPA get_node_boot_mode, spec §9.6)', () => {
  test('secure boot implies uefi, before anything else', () => {
    expect(nodeBootMode({ instance_info: { capabilities: { secure_boot: 'true' }, deploy_boot_mode: 'bios' } }, 'bios')).toBe('uefi');
    expect(nodeBootMode({ properties: { capabilities: 'secure_boot:True' } }, 'bios')).toBe('uefi');
  });

  test('instance_info.deploy_boot_mode, then the boot_mode capability, then driver_internal_info, then the ramdisk', () => {
    const node = {
      instance_info: { deploy_boot_mode: 'UEFI' },
      properties: { capabilities: 'boot_mode:bios' },
      driver_internal_info: { deploy_boot_mode: 'bios' },
    };
    expect(nodeBootMode(node, 'bios')).toBe('uefi');
    expect(nodeBootMode({ ...node, instance_info: {} }, 'uefi')).toBe('bios');
    expect(nodeBootMode({ driver_internal_info: { deploy_boot_mode: 'uefi' } }, 'bios')).toBe('uefi');
    expect(nodeBootMode({}, 'uefi')).toBe('uefi');
    expect(nodeBootMode(undefined, 'bios')).toBe('bios');
  });

  test('a value that is neither bios nor uefi is refused, naming where it came from', () => {
    expect(() => nodeBootMode({ properties: { capabilities: 'boot_mode:legacy' } }, 'bios')).toThrow(/Unknown boot mode "legacy" in the node's properties.capabilities.boot_mode/);
  });
});

describe('disk label (IPA get_partition_table_type_from_specs)', () => {
  test('uefi forces gpt; else instance_info first, then properties, default msdos', () => {
    expect(nodeDiskLabel({ properties: { capabilities: 'disk_label:msdos' } }, 'uefi')).toBe('gpt');
    expect(nodeDiskLabel({ instance_info: { capabilities: { disk_label: 'gpt' } }, properties: { capabilities: 'disk_label:msdos' } }, 'bios')).toBe('gpt');
    expect(nodeDiskLabel({ properties: { capabilities: 'disk_label:GPT' } }, 'bios')).toBe('gpt');
    expect(nodeDiskLabel({}, 'bios')).toBe('msdos');
  });

  test('an unknown label is refused instead of becoming msdos', () => {
    expect(() => nodeDiskLabel({ instance_info: { capabilities: { disk_label: 'efi' } } }, 'bios')).toThrow(/Unknown disk label "efi" in the node's instance_info.capabilities.disk_label/);
  });
});

describe('the partition fields of image_info', () => {
  test('read as Ironic sends them; numeric strings and Ironic\'s boolean strings accepted', () => {
    expect(partitionImageSpec({ id: 'i', urls: [], ...fields }, undefined, 'bios')).toEqual({
      rootMb: 10240, swapMb: 512, ephemeralMb: 0, ephemeralFormat: undefined, preserveEphemeral: false, bootMode: 'bios', diskLabel: 'msdos',
    });
    const spec = partitionImageSpec({ id: 'i', urls: [], ...fields, root_mb: '2048', ephemeral_mb: 1024, ephemeral_format: 'xfs', preserve_ephemeral: 'True' }, { instance_info: { deploy_boot_mode: 'uefi' } }, 'bios');
    expect(spec).toMatchObject({ rootMb: 2048, ephemeralFormat: 'xfs', preserveEphemeral: true, bootMode: 'uefi', diskLabel: 'gpt' });
  });

  test('every missing or malformed field is named in one InvalidCommandParamsError', () => {
    const attempt = () => partitionImageSpec({ id: 'i', urls: [], root_mb: 'ten', preserve_ephemeral: 'maybe' }, undefined, 'bios');
    expect(attempt).toThrow(/root_mb: expected a whole number of MiB, got "ten"/);
    expect(attempt).toThrow(/swap_mb: missing; ephemeral_mb: missing; ephemeral_format: missing; preserve_ephemeral: expected a boolean, got "maybe"/);
  });

  test('an ephemeral partition needs a filesystem the ramdisk can make', () => {
    expect(() => partitionImageSpec({ id: 'i', urls: [], ...fields, ephemeral_mb: 10 }, undefined, 'bios')).toThrow(/ephemeral_format must be set/);
    expect(() => partitionImageSpec({ id: 'i', urls: [], ...fields, ephemeral_mb: 10, ephemeral_format: 'ntfs' }, undefined, 'bios')).toThrow(/Unsupported ephemeral_format "ntfs"/);
  });
});

describe('the filesystems around the root (IPA work_on_disk)', () => {
  test('ESP, swap and ephemeral with IPA\'s labels and the force flags; none kept on a rebuild', () => {
    const plan = mkfsPlan(['efi system partition', 'ephemeral', 'swap', 'root'], 'xfs');
    expect(plan.map((m) => [m.tool, ...m.args('/dev/sda9')])).toEqual([
      ['mkfs.vfat', '-n', 'efi-part', '/dev/sda9'],
      ['mkswap', '-L', 'swap1', '/dev/sda9'],
      ['mkfs.xfs', '-f', '-L', 'ephemeral0', '/dev/sda9'],
    ]);
    expect(mkfsPlan(['ephemeral', 'root'], 'ext4').map((m) => m.args('/dev/x'))).toEqual([['-F', '-L', 'ephemeral0', '/dev/x']]);
    expect(mkfsPlan(['BIOS Boot partition', 'ephemeral', 'root'], undefined)).toEqual([]);
  });

  test('a filesystem tool missing from the ramdisk is refused before anything is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ina-path-'));
    try {
      await writeFile(join(dir, 'mkswap'), '#!/bin/sh\n', { mode: 0o755 });
      await writeFile(join(dir, 'mkfs.xfs'), 'not executable\n', { mode: 0o644 });
      await expect(checkMkfsTools(mkfsPlan(['swap', 'root'], undefined), dir)).resolves.toBeUndefined();
      await expect(checkMkfsTools(mkfsPlan(['swap', 'ephemeral', 'root'], 'xfs'), dir)).rejects.toThrow(
        "Cannot create the ephemeral partition's filesystem: mkfs.xfs is not installed in this ramdisk",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
