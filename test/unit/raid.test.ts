import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { AgentContext } from '../../src/agent-context.ts';
import { ConductorState } from '../../src/conductor/state.ts';
import { raidRootChoice } from '../../src/hardware/root-device.ts';
import { createConfiguration } from '../../src/hardware/raid/create.ts';
import { ToolError, type RunCommand } from '../../src/run.ts';
import { memoryLogger } from '../helpers/logger.ts';
import type { BlockDevice } from '../../src/hardware/block-devices.ts';
import { parseRaidConfig, raidSkipList, validateRaidConfig } from '../../src/hardware/raid/config.ts';
import { parseMdadmDetail, parseMdadmExamine, parseMdstat, volumeNameOf } from '../../src/hardware/raid/mdadm.ts';
import {
  maxLast,
  mdadmCreateArgs,
  mklabelArgs,
  mkpartArgs,
  parseFirstUsableSector,
  partitionBounds,
  partitionNumberOf,
  placeLogicalDisks,
  planRaid,
  raidStart,
} from '../../src/hardware/raid/plan.ts';
import { decideRaidActions, logicalDisksToSkip } from '../../src/hardware/raid/skip-list.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/mdadm/${name}`, import.meta.url), 'utf8');
const node = { uuid: 'node-1' };
const sw = (raid_level: string, size_gb: number | 'MAX', extra: Record<string, unknown> = {}) => ({ controller: 'software', raid_level, size_gb, ...extra });

function validate(logical_disks: unknown[], n: Record<string, unknown> = node, count = 2): boolean {
  return validateRaidConfig(parseRaidConfig({ logical_disks }), n, count);
}

function disk(name: string, extra: Partial<BlockDevice> = {}): BlockDevice {
  return {
    name, model: null, size: 100 * 2 ** 30, rotational: false, wwn: null, serial: null, vendor: null, wwn_with_extension: null,
    wwn_vendor_extension: null, hctl: null, by_path: null, logical_sectors: 512, physical_sectors: 512, tran: null, type: 'disk', ...extra,
  };
}

describe('validate_configuration (IPA\'s rules and messages)', () => {
  test('RAID-1 plus RAID-0/1+0/5/6 over enough disks is valid', () => {
    expect(validate([sw('1', 10)])).toBe(true);
    for (const level of ['0', '1', '1+0']) expect(validate([sw('1', 10), sw(level, 'MAX')])).toBe(true);
    expect(validate([sw('1', 10), sw('5', 'MAX')], node, 3)).toBe(true);
    expect(validate([sw('1', 10), sw('6', 'MAX')], node, 4)).toBe(true);
  });

  test('an empty config is not an error, a config without logical disks is', () => {
    expect(validateRaidConfig(parseRaidConfig({}), node, 2)).toBe(false);
    expect(() => validate([])).toThrow('RAID config contains no logical disks');
  });

  test.each([
    [[sw('1', 10), sw('1', 10), sw('1', 'MAX')], 'Software RAID configuration requires one or two logical disks'],
    [[{ raid_level: '1', size_gb: 10 }], "Software RAID configuration requires all logical disks to have 'controller'='software'"],
    [[sw('0', 10)], 'Software RAID Configuration requires RAID-1 for the first logical disk'],
    [[sw('1', 'MAX'), sw('0', 'MAX')], "Software RAID can have only one RAID device with size 'MAX'"],
    [[sw('1', 10), sw('4', 'MAX')], 'Software RAID configuration does not support RAID level 4'],
    [[sw('1', 10), sw('5', 'MAX')], 'Software RAID configuration is not possible for RAID level 5 with only 2 block devices found.'],
    [[sw('1', 10), sw('6', 'MAX')], 'Software RAID configuration is not possible for RAID level 6 with only 2 block devices found.'],
    [[sw('1', 10, { volume_name: 'a' }), sw('0', 'MAX', { volume_name: 'a' })], 'Duplicate software RAID device name a detected'],
    [[sw('1', 10, { is_root_volume: true }), sw('0', 'MAX', { is_root_volume: true })], 'Software RAID configuration allows only one logical disk to be marked as is_root_volume'],
    [[sw('1', 10, { physical_disks: [{ name: '/dev/sda' }] })], 'The physical_disks parameter for software RAID must be a list with at least 2 items'],
    [[sw('1', 10, { physical_disks: [{ name: '/dev/sda' }, '/dev/sdb'] })], 'The physical_disks parameter for software RAID must be a list of device hints (dictionaries)'],
  ])('%j: %s', (disks, message) => {
    expect(() => validate(disks)).toThrow(message);
  });

  test('all problems are reported at once, as a SoftwareRAIDError naming the node', () => {
    try {
      validate([sw('0', 'MAX'), sw('7', 'MAX')]);
      expect.unreachable();
    } catch (err) {
      expect((err as { type: string }).type).toBe('SoftwareRAIDError');
      expect((err as Error).message).toBe(
        "Software RAID caused unknown error: Could not validate Software RAID config for node-1: Software RAID Configuration requires RAID-1 for the first logical disk; Software RAID can have only one RAID device with size 'MAX'; Software RAID configuration does not support RAID level 7",
      );
    }
  });

  test('a volume_name in skip_block_devices makes volume names mandatory', () => {
    const n = { uuid: 'n', properties: { skip_block_devices: [{ volume_name: 'keep' }, { name: '/dev/sdc' }] } };
    expect([...raidSkipList(n)!]).toEqual(['keep']);
    expect(raidSkipList({ properties: { skip_block_devices: [{ name: '/dev/sdc' }] } })).toBeUndefined();
    expect(() => validate([sw('1', 10)], n)).toThrow('All logical disks are required to have a volume name');
    expect(validate([sw('1', 10, { volume_name: 'root' })], n)).toBe(true);
  });

  test('a shape Ironic\'s schema refuses is refused at the boundary', () => {
    expect(() => parseRaidConfig({ logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 'ALL' }] })).toThrow(/logical_disks\.0\.size_gb/);
    expect(() => parseRaidConfig({ logical_disks: [{ controller: 'software', size_gb: 10 }] })).toThrow(/raid_level/);
  });
});

describe('planning the member disks', () => {
  const disks = [disk('/dev/sda', { serial: 'A' }), disk('/dev/sdb', { serial: 'B' }), disk('/dev/nvme0n1', { serial: 'C', tran: 'nvme' })];

  test('without physical_disks a logical disk spans every disk; hints pick one disk each, first match not yet taken', () => {
    const ld = parseRaidConfig({ logical_disks: [sw('1', 10), sw('0', 'MAX', { physical_disks: [{ serial: 'C' }, { size: '>= 10' }] })] }).logical_disks!;
    const { disks: members, placed } = placeLogicalDisks(disks, ld);
    expect(members).toEqual(['/dev/sda', '/dev/sdb', '/dev/nvme0n1']);
    expect(placed.map((p) => p.devices)).toEqual([['/dev/sda', '/dev/sdb', '/dev/nvme0n1'], ['/dev/nvme0n1', '/dev/sda']]);
  });

  test('a hint matching nothing, or nothing left, is a SoftwareRAIDError', () => {
    const none = parseRaidConfig({ logical_disks: [sw('1', 10, { physical_disks: [{ serial: 'Z' }, { serial: 'A' }] })] }).logical_disks!;
    expect(() => placeLogicalDisks(disks, none)).toThrow(/No candidates for physical disk \{"serial":"Z"\}/);
    const twice = parseRaidConfig({ logical_disks: [sw('1', 10, { physical_disks: [{ serial: 'A' }, { serial: 'A' }] })] }).logical_disks!;
    expect(() => placeLogicalDisks(disks, twice)).toThrow(/No candidates left for physical disk .* after picking \/dev\/sda/);
  });

  test('the start leaves room for the ESP (UEFI), the BIOS boot partition (gpt), or starts at the first usable sector (msdos)', () => {
    expect(raidStart('uefi', 'gpt')).toBe('551MiB');
    expect(raidStart('bios', 'gpt')).toBe('8MiB');
    expect(raidStart('bios', 'msdos', 2048)).toBe('2048s');
    expect(parseFirstUsableSector('Creating new GPT entries in memory.\n2048\n')).toBe(2048);
    expect(() => parseFirstUsableSector('Problem opening /dev/sdz')).toThrow(/unexpected output of sgdisk -F/);
  });

  test('partition bounds as IPA computes them: first ends at size_gb GiB, the next starts there, MAX runs to the end', () => {
    expect(partitionBounds(10, '551MiB')).toEqual({ start: '551MiB', end: '10GiB', next: 10 });
    expect(partitionBounds(20, 10)).toEqual({ start: '10GiB', end: '30GiB', next: 30 });
    expect(partitionBounds('MAX', 10)).toEqual({ start: '10GiB', end: '-1', next: undefined });
    expect(partitionBounds('MAX', '8MiB')).toEqual({ start: '8MiB', end: '-1', next: undefined });
  });

  test('MAX goes last; md numbers follow the creation order; 1+0 is mdadm level 10; nvme and loop partitions take a "p"', () => {
    expect(maxLast([{ size_gb: 'MAX' as const, n: 0 }, { size_gb: 5, n: 1 }]).map((d) => d.n)).toEqual([1, 0]);
    const ld = parseRaidConfig({ logical_disks: [sw('1+0', 'MAX', { volume_name: 'data' }), sw('1', 10, { is_root_volume: true })] }).logical_disks!;
    const members = [disk('/dev/sda'), disk('/dev/nvme0n1')];
    const { disks: used, placed } = placeLogicalDisks(members, ld);
    const plan = planRaid({ placed, disks: used, starts: { '/dev/sda': '551MiB', '/dev/nvme0n1': '551MiB' }, bootMode: 'uefi', tableType: 'gpt' });
    expect(plan.partitions.map((p) => [p.path, p.start, p.end])).toEqual([
      ['/dev/sda1', '551MiB', '10GiB'],
      ['/dev/nvme0n1p1', '551MiB', '10GiB'],
      ['/dev/sda2', '10GiB', '-1'],
      ['/dev/nvme0n1p2', '10GiB', '-1'],
    ]);
    expect(plan.arrays.map((a) => [a.md, a.level, a.name])).toEqual([['/dev/md0', '1', 'md0'], ['/dev/md1', '10', 'data']]);
    expect(mdadmCreateArgs(plan.arrays[0]!)).toEqual([
      '--create', '/dev/md0', '--force', '--run', '--metadata=1', '--level', '1', '--name', 'md0', '--raid-devices', '2', '/dev/sda1', '/dev/nvme0n1p1',
    ]);
    expect(mdadmCreateArgs(plan.arrays[1]!)).toEqual([
      '--create', '/dev/md1', '--force', '--run', '--metadata=1', '--level', '10', '--name', 'data', '--raid-devices', '2', '/dev/sda2', '/dev/nvme0n1p2',
    ]);
  });

  test('md names already taken (an array kept by the skip list) are skipped', () => {
    const ld = parseRaidConfig({ logical_disks: [sw('1', 'MAX')] }).logical_disks!;
    const { disks: used, placed } = placeLogicalDisks([disk('/dev/loop0'), disk('/dev/loop1')], ld);
    const plan = planRaid({ placed, disks: used, starts: { '/dev/loop0': '8MiB', '/dev/loop1': '8MiB' }, bootMode: 'bios', tableType: 'gpt', existingMd: ['/dev/md0'] });
    expect(plan.arrays[0]!.md).toBe('/dev/md1');
    expect(plan.arrays[0]!.members.map((m) => m.path)).toEqual(['/dev/loop0p1', '/dev/loop1p1']);
  });

  test('parted argv: IPA\'s mklabel and mkpart', () => {
    expect(mklabelArgs('/dev/sda', 'msdos')).toEqual(['/dev/sda', '-s', '--', 'mklabel', 'msdos']);
    expect(mkpartArgs({ disk: '/dev/sda', start: '2048s', end: '10GiB' })).toEqual(['/dev/sda', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '2048s', '10GiB']);
  });

  test('partition numbers from kernel names', () => {
    expect(['/dev/sda2', '/dev/nvme0n1p3', '/dev/loop0p1', '/dev/loop0', '/dev/nvme0n1', '/dev/sda'].map(partitionNumberOf)).toEqual(['2', '3', '1', undefined, undefined, undefined]);
  });
});

describe('reading mdadm and /proc/mdstat', () => {
  test('mdadm --detail: UUID, volume name, level, members', () => {
    expect(parseMdadmDetail(fixture('detail-raid1.txt'))).toEqual({
      uuid: '83143055:2781ddf5:2c8f44c7:9b45d92e', volumeName: 'root', level: 'raid1', components: ['/dev/sda1', '/dev/sdb1'],
    });
  });

  test('a degraded array: removed slots have no device; "Events : 21/dev/md" is not a member', () => {
    const d = parseMdadmDetail(fixture('detail-degraded-nvme.txt'));
    expect(d.components).toEqual(['/dev/nvme0n1p2', '/dev/nvme1n1p2', '/dev/nvme3n1p2']);
    expect(d.volumeName).toBe('data');
  });

  test('an inactive array without a name line', () => {
    expect(parseMdadmDetail(fixture('detail-inactive-no-name.txt'))).toEqual({
      uuid: 'b5e136c0:a7e379b7:db25e45d:4b63928b', volumeName: null, level: 'raid0', components: ['/dev/sda2'],
    });
  });

  test('mdadm --examine of a member: the array UUID, not the device UUID', () => {
    expect(parseMdadmExamine(fixture('examine-member.txt'))).toEqual({ arrayUuid: '83143055:2781ddf5:2c8f44c7:9b45d92e', volumeName: 'root' });
  });

  test('volume names as IPA reads them', () => {
    expect(volumeNameOf('  Name : host:this_name  (local to host host)')).toBe('this_name');
    expect(volumeNameOf('  Name : plain')).toBe('plain');
    expect(volumeNameOf('  Name : box:/dev/md0  (local to host box)')).toBe('/dev/md0');
    expect(volumeNameOf('  Name : a:b:c')).toBeNull();
    expect(volumeNameOf('  UUID : 1:2:3:4')).toBeNull();
  });

  test('/proc/mdstat: arrays, states, levels and members', () => {
    expect(parseMdstat(fixture('mdstat.txt'))).toEqual([
      { device: '/dev/md1', state: 'active', level: 'raid10', members: ['/dev/nvme3n1p2', '/dev/nvme1n1p2', '/dev/nvme0n1p2'] },
      { device: '/dev/md0', state: 'active (auto-read-only)', level: 'raid1', members: ['/dev/sdb1', '/dev/sda1'] },
      { device: '/dev/md126', state: 'inactive', level: null, members: ['/dev/sda2'] },
    ]);
    expect(parseMdstat('Personalities : \nunused devices: <none>\n')).toEqual([]);
  });
});

describe('the skip list (volume names in skip_block_devices)', () => {
  const arrays = [
    { device: '/dev/md0', volumeName: 'esp', holderDisks: ['/dev/sda', '/dev/sdb'] },
    { device: '/dev/md1', volumeName: 'keep', holderDisks: ['/dev/sda', '/dev/sdb'] },
    { device: '/dev/md2', volumeName: 'other', holderDisks: ['/dev/sdb', '/dev/sdc'] },
    { device: '/dev/md3', volumeName: 'free', holderDisks: ['/dev/sdd', '/dev/sde'] },
  ];

  test('no skip list: everything is deleted', () => {
    expect(decideRaidActions(arrays, undefined).actions).toEqual({ '/dev/md0': 'delete', '/dev/md1': 'delete', '/dev/md2': 'delete', '/dev/md3': 'delete' });
  });

  test('a kept array keeps itself, wipes its disk neighbours, and an ESP neighbour is kept', () => {
    const d = decideRaidActions(arrays, new Set(['keep']));
    expect(d.actions).toEqual({ '/dev/md0': 'keep', '/dev/md1': 'keep', '/dev/md2': 'wipe', '/dev/md3': 'delete' });
    expect(d.causes).toEqual({ '/dev/md0': 'keep', '/dev/md2': 'keep' });
  });

  test('creation skips logical disks that survived, and refuses when an unexpected one survived', () => {
    const survivors = decideRaidActions(arrays.slice(0, 3), new Set(['keep']));
    const lds = [{ volume_name: 'keep' }, { volume_name: 'other' }];
    expect(logicalDisksToSkip(lds, survivors, new Set(['keep']))).toEqual({ skip: lds });
    expect(logicalDisksToSkip([{ volume_name: 'keep' }], survivors, new Set(['keep'])).problem).toBe('Existing Software RAID device detected that should not');
    const unnamed = decideRaidActions([{ device: '/dev/md0', volumeName: null, holderDisks: ['/dev/sda'] }], new Set(['keep']));
    expect(logicalDisksToSkip(lds, unnamed, new Set(['keep'])).problem).toMatch(/does not have a volume name/);
  });
});

describe('create_configuration end to end with recorded tools (an md driver present)', () => {
  function fakeMachine() {
    const root = mkdtempSync(join(tmpdir(), 'ina-raid-unit-'));
    const sys = join(root, 'sys');
    const proc = join(root, 'proc');
    mkdirSync(proc, { recursive: true });
    writeFileSync(join(proc, 'mdstat'), 'Personalities : \nunused devices: <none>\n');
    for (const k of ['sda', 'sdb']) {
      for (const n of [1, 2]) {
        mkdirSync(join(sys, 'class/block', k, `${k}${n}`), { recursive: true });
        writeFileSync(join(sys, 'class/block', k, `${k}${n}`, 'partition'), `${n}\n`);
        writeFileSync(join(sys, 'class/block', k, `${k}${n}`, 'size'), '2048\n');
      }
    }
    const calls: string[][] = [];
    const lsblk = JSON.stringify({ blockdevices: ['sda', 'sdb'].map((k) => ({ kname: k, size: 100 * 2 ** 30, rota: false, type: 'disk' })) });
    const run: RunCommand = async (file, args) => {
      calls.push([file, ...args]);
      if (file === 'lsblk') return lsblk;
      if (file === 'sfdisk') throw new ToolError('sfdisk', `sfdisk --json ${args[1]} exited with 1: sfdisk: ${args[1]}: does not contain a recognized partition table`, 1);
      if (file === 'mdadm' && args[0] === '--detail') {
        // md1 comes up without its second member: the agent adds it back, as IPA does.
        return args[1] === '/dev/md0' ? fixture('detail-raid1.txt') : fixture('detail-raid1.txt').replace('/dev/sda1', '/dev/sda2').replace(/^.*\/dev\/sdb1\n/m, '');
      }
      return '';
    };
    const checked: string[] = [];
    const { log } = memoryLogger();
    const ctx = {
      run, log, conductor: new ConductorState(), deployment: { partitionUuids: {} },
      diskGuard: { allowlist: [], allowed: async () => true, check: async (d: string) => (checked.push(d), d) },
    } as unknown as AgentContext;
    return { ctx, calls, checked, sys, proc, cleanup: () => rmSync(root, { recursive: true, force: true }) };
  }

  test('the tools run in IPA\'s order with IPA\'s arguments, the result is the config, the root volume is remembered', async () => {
    const m = fakeMachine();
    try {
      const config = { logical_disks: [sw('1', 10, { is_root_volume: true }), sw('1+0', 'MAX', { volume_name: 'data' })] };
      const node = { uuid: 'n1', properties: { capabilities: 'boot_mode:uefi' } };
      await expect(createConfiguration(m.ctx, node, config, { procRoot: m.proc, sysRoot: m.sys })).resolves.toEqual(config);
      expect(m.calls.filter(([f]) => f !== 'lsblk' && f !== 'sfdisk' && f !== 'partx')).toEqual([
        ['parted', '/dev/sda', '-s', '--', 'mklabel', 'gpt'],
        ['parted', '/dev/sdb', '-s', '--', 'mklabel', 'gpt'],
        ['parted', '/dev/sda', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '551MiB', '10GiB'],
        ['parted', '/dev/sdb', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '551MiB', '10GiB'],
        ['parted', '/dev/sda', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '10GiB', '-1'],
        ['parted', '/dev/sdb', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '10GiB', '-1'],
        ['mdadm', '--create', '/dev/md0', '--force', '--run', '--metadata=1', '--level', '1', '--name', 'md0', '--raid-devices', '2', '/dev/sda1', '/dev/sdb1'],
        ['mdadm', '--detail', '/dev/md0'],
        ['mdadm', '--create', '/dev/md1', '--force', '--run', '--metadata=1', '--level', '10', '--name', 'data', '--raid-devices', '2', '/dev/sda2', '/dev/sdb2'],
        ['mdadm', '--detail', '/dev/md1'],
        ['mdadm', '--add', '/dev/md1', '/dev/sdb2'],
      ]);
      expect(m.checked.slice(0, 2)).toEqual(['/dev/sda', '/dev/sdb']);
      expect(m.ctx.deployment.raidRootVolumes).toEqual({ '/dev/md0': true });
    } finally {
      m.cleanup();
    }
  });

  test('BIOS on msdos asks sgdisk for the first usable sector after the table is written', async () => {
    const m = fakeMachine();
    try {
      const run = m.ctx.run;
      (m.ctx as { run: RunCommand }).run = async (file, args, opts) => (file === 'sgdisk' ? (m.calls.push([file, ...args]), 'Creating new GPT entries.\n2048\n') : run(file, args, opts));
      await createConfiguration(m.ctx, { uuid: 'n1', properties: { capabilities: 'boot_mode:bios' } }, { logical_disks: [sw('1', 'MAX')] }, { procRoot: m.proc, sysRoot: m.sys });
      const parted = m.calls.filter(([f]) => f === 'parted' || f === 'sgdisk');
      expect(parted.slice(0, 2)).toEqual([['parted', '/dev/sda', '-s', '--', 'mklabel', 'msdos'], ['sgdisk', '-F', '/dev/sda']]);
      expect(parted).toContainEqual(['parted', '/dev/sda', '-s', '-a', 'optimal', '--', 'mkpart', 'primary', '2048s', '-1']);
    } finally {
      m.cleanup();
    }
  });
});

describe('root device with a RAID config of this boot (IPA\'s _raid_root_device_mapping)', () => {
  const devices = [disk('/dev/sda'), disk('/dev/sdb'), disk('/dev/sdc'), disk('/dev/md0', { type: 'raid1' }), disk('/dev/md1', { type: 'raid0' })];
  test('is_root_volume true picks the md device', () => {
    expect(raidRootChoice(devices, { '/dev/md0': true }, {}).root).toBe('/dev/md0');
  });
  test('is_root_volume false removes the md device and its disks from the candidates', () => {
    const choice = raidRootChoice(devices, { '/dev/md1': false }, { '/dev/md1': ['/dev/sda', '/dev/sdb'] });
    expect(choice.root).toBeUndefined();
    expect(choice.devices.map((d) => d.name)).toEqual(['/dev/sdc', '/dev/md0']);
  });
});
