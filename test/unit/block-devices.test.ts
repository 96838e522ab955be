import { describe, expect, test } from 'vitest';
import { parseLsblk } from '../../src/hardware/block-devices.ts';

const row = (kname: string, type: string, size: number | string, extra: Record<string, unknown> = {}) => ({
  kname, model: 'm', size, rota: false, type, uuid: null, partuuid: null, serial: 's', wwn: 'w', 'log-sec': 512, 'phy-sec': 4096, tran: 'sata', pkname: null, ...extra,
});

describe('lsblk filtering (spec §12.4)', () => {
  const output = JSON.stringify({
    blockdevices: [
      row('sda', 'disk', 1000), row('sdb', 'disk', 1000), row('sdc', 'disk', 1000),
      row('sdd', 'disk', 1000),
      row('loop0', 'loop', 1000),
      row('zram0', 'disk', 1000),
      row('ram0', 'disk', 1000), row('ram1', 'disk', 1000), row('ram2', 'disk', 1000), row('ram3', 'disk', 1000),
      row('fd1', 'disk', 1000),
      row('sdf', 'disk', 0),
      row('dm-0', 'mpath', '1765517033472', { pkname: 'sdd' }),
      row('sda1', 'part', 500, { pkname: 'sda' }),
      row('md0', 'raid1', 2000),
      row('sr0', 'rom', 1000),
      row('dm-1', 'lvm', 1000),
    ],
  });

  test('disks, raid and multipath maps; no paths of a map, no ram/zram/floppy/loop/empty/part/rom/lvm', () => {
    const disks = parseLsblk(output);
    expect(disks.map((d) => d.name)).toEqual(['/dev/sda', '/dev/sdb', '/dev/sdc', '/dev/dm-0', '/dev/md0']);
    expect(disks.find((d) => d.name === '/dev/dm-0')?.size).toBe(1765517033472);
  });

  test('loop devices only when asked', () => {
    expect(parseLsblk(output, { includeLoop: true }).map((d) => d.name)).toContain('/dev/loop0');
  });

  test('ROTA as a bool or "0"/"1"; sectors and transport carried', () => {
    const d = parseLsblk(JSON.stringify({ blockdevices: [row('sda', 'disk', 1, { rota: '1' }), row('sdb', 'disk', 1, { rota: true, model: '  ', serial: null })] }));
    expect(d.map((x) => x.rotational)).toEqual([true, true]);
    expect(d[0]).toMatchObject({ logical_sectors: 512, physical_sectors: 4096, tran: 'sata', model: 'm' });
    expect(d[1]).toMatchObject({ model: null, serial: null });
  });

  test('a missing required column is a clear error', () => {
    expect(() => parseLsblk(JSON.stringify({ blockdevices: [{ kname: 'sda', size: 1 }] }))).toThrow(/unexpected lsblk output/);
    expect(() => parseLsblk('lsblk: unknown column')).toThrow(/unexpected lsblk output/);
  });
});
