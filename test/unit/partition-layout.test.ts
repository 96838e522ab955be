import { describe, expect, test } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { chooseLabel, partitionPath, planLayout, sfdiskScript, sgdiskArgs } from '../../src/hardware/partition-layout.ts';

const GiB = 1024 ** 3;
const roles = (l: ReturnType<typeof planLayout>) => l.partitions.map((p) => p.role);

describe('partition layout planner (spec §9.6)', () => {
  test('uefi: gpt whatever was asked, ESP first at 1 MiB, root last', () => {
    const l = planLayout({ diskBytes: 10 * GiB, rootMb: 1024, swapMb: 64, ephemeralMb: 128, configDriveBytes: 3 * 1024 * 1024 + 1, bootMode: 'uefi', diskLabel: 'msdos' });
    expect(l.label).toBe('gpt');
    expect(roles(l)).toEqual(['efi system partition', 'ephemeral', 'swap', 'configdrive', 'root']);
    expect(l.partitions.map((p) => [p.startMib, p.sizeMib, p.type])).toEqual([
      [1, 550, 'EF00'], [551, 128, '8300'], [679, 64, '8200'], [743, 4, '8300'], [747, 1024, '8300'],
    ]);
  });

  test('bios + gpt: 1 MiB BIOS boot partition, no boot flag on root', () => {
    const l = planLayout({ diskBytes: 4 * GiB, rootMb: 100, bootMode: 'bios', diskLabel: 'gpt' });
    expect(roles(l)).toEqual(['BIOS Boot partition', 'root']);
    expect(l.partitions[0]).toMatchObject({ startMib: 1, sizeMib: 1, type: 'EF02' });
    expect(l.partitions[1]).toMatchObject({ startMib: 2, bootable: false });
  });

  test('bios + msdos (the default): no boot partition, root bootable', () => {
    expect(chooseLabel('bios', undefined)).toBe('msdos');
    const l = planLayout({ diskBytes: 4 * GiB, rootMb: 100, swapMb: 10, bootMode: 'bios' });
    expect(l.label).toBe('msdos');
    expect(roles(l)).toEqual(['swap', 'root']);
    expect(l.partitions.map((p) => [p.type, p.bootable])).toEqual([['82', false], ['83', true]]);
  });

  test('ppc64 bios: PReP 8 MiB, boot flag on PReP for msdos, not on root', () => {
    const l = planLayout({ diskBytes: 4 * GiB, rootMb: 100, bootMode: 'bios', cpuArch: 'ppc64le' });
    expect(l.partitions.map((p) => [p.role, p.sizeMib, p.type, p.bootable])).toEqual([['PReP Boot partition', 8, '41', true], ['root', 100, '83', false]]);
  });

  test('bad input is refused before anything is written', () => {
    const bad = (over: Record<string, unknown>) => () => planLayout({ diskBytes: 4 * GiB, rootMb: 100, bootMode: 'bios', ...over });
    for (const over of [{ rootMb: 0 }, { rootMb: -1 }, { rootMb: 1.5 }, { swapMb: -2 }, { ephemeralMb: 0.5 }, { configDriveBytes: 0 }, { rootMb: 5000 }]) {
      expect(bad(over)).toThrow(AgentError);
      try { bad(over)(); } catch (e) { expect((e as AgentError).type).toBe('InvalidCommandParamsError'); }
    }
    // five primaries on msdos
    expect(bad({ cpuArch: 'ppc64', swapMb: 1, ephemeralMb: 1, configDriveBytes: 1 })).toThrow(/at most 4 primary/);
  });

  test('exactly filling the disk is allowed, one MiB more is not', () => {
    expect(planLayout({ diskBytes: 101 * 1024 * 1024, rootMb: 100, bootMode: 'bios' }).partitions[0]!.sizeMib).toBe(100);
    expect(() => planLayout({ diskBytes: 101 * 1024 * 1024, rootMb: 101, bootMode: 'bios' })).toThrow(/needs 101 MiB/);
    expect(() => planLayout({ diskBytes: 102 * 1024 * 1024, rootMb: 101, bootMode: 'bios', diskLabel: 'gpt' })).toThrow(/needs 102 MiB/);
  });

  test('partition paths', () => {
    expect(partitionPath('/dev/sda', 2)).toBe('/dev/sda2');
    expect(partitionPath('/dev/loop7', 2)).toBe('/dev/loop7p2');
    expect(partitionPath('/dev/nvme0n1', 1)).toBe('/dev/nvme0n1p1');
  });

  test('sgdisk and sfdisk command lines', () => {
    const g = planLayout({ diskBytes: 4 * GiB, rootMb: 100, swapMb: 8, bootMode: 'uefi' });
    expect(sgdiskArgs('/dev/loop3', g)).toEqual([
      '-o', '-n', '1:1M:+550M', '-t', '1:EF00', '-c', '1:efi system partition',
      '-n', '2:551M:+8M', '-t', '2:8200', '-c', '2:swap',
      '-n', '3:559M:+100M', '-t', '3:8300', '-c', '3:root', '/dev/loop3',
    ]);
    const m = planLayout({ diskBytes: 4 * GiB, rootMb: 100, swapMb: 8, bootMode: 'bios' });
    expect(sfdiskScript(m)).toBe('label: dos\nunit: sectors\nstart=2048, size=16384, type=82\nstart=18432, size=204800, type=83, bootable\n');
    // sfdisk counts the device's logical sectors: on a 4K-native disk a MiB is 256 of them.
    expect(sfdiskScript(m, 4096)).toBe('label: dos\nunit: sectors\nstart=256, size=2048, type=82\nstart=2304, size=25600, type=83, bootable\n');
    expect(() => sfdiskScript(g)).toThrow();
    expect(() => sgdiskArgs('/dev/x', m)).toThrow();
  });
});
