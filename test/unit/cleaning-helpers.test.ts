import { mkdtempSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseBlkidExport, parseWipefsJson } from '../../src/hardware/blkid.ts';
import { sampleRanges } from '../../src/hardware/erase/readback.ts';
import { edgeRanges } from '../../src/hardware/erase/metadata.ts';
import { protectedWhat } from '../../src/hardware/erase/safety.ts';
import { parseSfdiskJson } from '../../src/hardware/partitions.ts';
import { erasePstore, findPstoreMount } from '../../src/hardware/pstore.ts';
import { cleanUefiNvram, compilePatterns, parseBootRecords } from '../../src/hardware/uefi-nvram.ts';
import type { RunCommand } from '../../src/run.ts';

const MiB = 1024 * 1024;

describe('blkid, wipefs and sfdisk outputs', () => {
  test('blkid -p -o export, with escaped values', () => {
    expect(parseBlkidExport('DEVNAME=/dev/sda2\nUUID=ad6c\nVERSION=LVM2\\ 001\nTYPE=LVM2_member\nUSAGE=raid\n')).toEqual({
      DEVNAME: '/dev/sda2', UUID: 'ad6c', VERSION: 'LVM2 001', TYPE: 'LVM2_member', USAGE: 'raid',
    });
  });
  test('wipefs --json: offsets are hex strings; no output is no signature', () => {
    const out = '{"signatures": [{"device":"loop0","offset":"0x3fffe00","type":"gpt","uuid":null,"label":null}]}';
    expect(parseWipefsJson(out)).toEqual([{ device: 'loop0', offset: 0x3fffe00, type: 'gpt' }]);
    expect(parseWipefsJson('')).toEqual([]);
    expect(() => parseWipefsJson('{"x":1}')).toThrow(/unexpected wipefs output/);
  });
  test('sfdisk --json: GPT and MBR tables', () => {
    const gpt = parseSfdiskJson('{"partitiontable":{"label":"gpt","id":"C141","device":"/dev/sda","unit":"sectors","sectorsize":512,"partitions":[{"node":"/dev/sda1","start":2048,"size":16384,"type":"37AFFC90-EF7D-4E96-91C3-2D7AE055B174","uuid":"72B1","name":"uefi-holder-0"}]}}');
    expect(gpt.partitions[0]).toEqual({ node: '/dev/sda1', start: 2048, size: 16384, type: '37AFFC90-EF7D-4E96-91C3-2D7AE055B174', uuid: '72B1', name: 'uefi-holder-0' });
    const dos = parseSfdiskJson('{"partitiontable":{"label":"dos","id":"0x1234","device":"/dev/sdb","unit":"sectors","partitions":[{"node":"/dev/sdb1","start":2048,"size":8192,"type":"fb"}]}}');
    expect(dos.partitions[0]?.type).toBe('fb');
    expect(dos.partitions[0]?.name).toBeNull();
  });
});

describe('shared-filesystem guard (spec §11.4)', () => {
  test('GPT GUIDs in either case, MBR 0xfb however written, gfs2', () => {
    expect(protectedWhat(['37affc90-ef7d-4e96-91c3-2d7ae055b174'], [])).toBe('IBM GPFS Partition');
    expect(protectedWhat(['AA31E02A-400F-11DB-9590-000C2911D1B8'], [])).toBe('VMware VMFS Partition (GPT)');
    expect(protectedWhat(['fb'], [])).toBe('VMware VMFS Partition (MBR)');
    expect(protectedWhat(['0xFB'], [])).toBe('VMware VMFS Partition (MBR)');
    expect(protectedWhat([null, undefined], ['gfs2'])).toBe('Red Hat Global File System 2');
    expect(protectedWhat(['0fc63daf-8483-4772-8e79-3d69d8477de4', '0x83'], ['ext4'])).toBeUndefined();
  });
});

describe('what an erase covers and samples', () => {
  test('metadata: a MiB at each end, or the whole of a small device', () => {
    expect(edgeRanges(64 * MiB)).toEqual([{ offset: 0, length: MiB }, { offset: 63 * MiB, length: MiB }]);
    expect(edgeRanges(MiB + 512)).toEqual([{ offset: 0, length: MiB + 512 }]);
  });
  test('read-back: both ends plus random aligned blocks inside', () => {
    const ranges = sampleRanges(100 * MiB, 4, (max) => max - 1);
    expect(ranges).toHaveLength(6);
    expect(ranges[0]).toEqual({ offset: 0, length: MiB });
    expect(ranges[1]).toEqual({ offset: 99 * MiB, length: MiB });
    for (const r of ranges.slice(2)) {
      expect(r.offset % 512).toBe(0);
      expect(r.offset + r.length).toBeLessThanOrEqual(99 * MiB);
    }
    expect(sampleRanges(4096, 4)).toEqual([{ offset: 0, length: 4096 }]);
  });
});

describe('erase_pstore', () => {
  test('finds the pstore mount and deletes what is in it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ina-pstore-'));
    mkdirSync(join(dir, 'store'));
    writeFileSync(join(dir, 'store', 'dmesg-efi-1'), 'panic');
    mkdirSync(join(dir, 'store', 'sub'));
    const mounts = join(dir, 'mounts');
    writeFileSync(mounts, `sysfs /sys sysfs rw 0 0\npstore ${join(dir, 'store')} pstore rw,nosuid 0 0\n`);
    expect(await erasePstore(mounts)).toEqual({ pstore: join(dir, 'store'), removed: ['dmesg-efi-1', 'sub'] });
    expect(readdirSync(join(dir, 'store'))).toEqual([]);
    expect(findPstoreMount('pstore /sys/fs/pstore qstore rw 0 0\n')).toBeUndefined();
    writeFileSync(mounts, 'sysfs /sys sysfs rw 0 0\n');
    expect(await erasePstore(mounts)).toEqual({ pstore: null, removed: [] });
  });
});

describe('clean_uefi_nvram', () => {
  const efibootmgr = [
    'BootCurrent: 0001',
    'Timeout: 1 seconds',
    'BootOrder: 0001,0000,0002',
    'Boot0000* ubuntu\tHD(1,GPT,4f2b1b6c-0000-4000-8000-000000000001,0x800,0x100000)/File(\\EFI\\ubuntu\\shimx64.efi)',
    'Boot0001* UEFI: PXE IPv4 Intel(R) Ethernet\tPciRoot(0x0)/Pci(0x1c,0x0)/Pci(0x0,0x0)/MAC(3cfdfe000001,0)/IPv4(0.0.0.0,0,DHCP)',
    'Boot0002* Other\tVenHw(99e275e7-75a0-4b37-a2e6-c5385e6c00cb)/File(\\EFI\\BOOT\\grubx64.efi)',
  ].join('\n');

  test('parses efibootmgr -v and deletes the entries matching the default patterns', async () => {
    expect(parseBootRecords(efibootmgr).map((r) => r.number)).toEqual(['0000', '0001', '0002']);
    const calls: string[][] = [];
    const run: RunCommand = async (file, args) => {
      calls.push([file, ...args]);
      return args[0] === '-v' ? efibootmgr : '';
    };
    const result = await cleanUefiNvram(run, compilePatterns(undefined));
    expect(result.removed.map((r) => r.label)).toEqual(['ubuntu', 'Other']);
    expect(calls.slice(1)).toEqual([['efibootmgr', '-b', '0000', '-B'], ['efibootmgr', '-b', '0002', '-B']]);
  });

  test('match_patterns must be a list of valid regular expressions', () => {
    expect(compilePatterns(['pxe']).map((r) => r.flags)).toEqual(['i']);
    for (const bad of ['^HD', [1], ['(unclosed']]) {
      expect(() => compilePatterns(bad)).toThrow(/The match_patterns must be a list of strings/);
    }
  });
});
