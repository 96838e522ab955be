import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { installGrub } from '../../src/bootloader/grub.ts';
import { BIOS_BOOT_TYPE, ensureBiosBootPartitions, sgdiskBiosBootArgs } from '../../src/bootloader/raid-bios-boot.ts';
import { mdadmEspArgs, raidHolderDisks, sgdiskEspArgs } from '../../src/bootloader/raid-esp.ts';
import { setupUefiBoot, setupUefiWithoutNvram } from '../../src/bootloader/uefi.ts';
import type { CommandContext } from '../../src/extensions/types.ts';
import { ToolError, type RunCommand, type RunCommandBytes } from '../../src/run.ts';
import { memoryLogger } from '../helpers/logger.ts';

/**
 * install_bootloader on a software RAID root (UEFI, and grub's BIOS boot partitions), against a fake machine: a sysfs tree
 * under a temp dir (two disks sda and sdb, md0 over sda1 and sdb1 holding a whole-disk GPT
 * image with its ESP as md0p1), /proc/mdstat, and tools that answer as recorded from the real
 * ones and change the fake sysfs as the kernel would (partx registers a new partition, mdadm
 * makes an array with slaves).
 */

const MIB = 1024 * 1024;
const ESP_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_RAID = 'A19D880F-05FC-4D3B-A006-743F0F84911E';

interface Part {
  node: string;
  start: number;
  size: number;
  type: string;
  name?: string;
}

class FakeMachine {
  readonly sys = mkdtempSync(join(tmpdir(), 'ina-raid-sys-'));
  readonly proc = mkdtempSync(join(tmpdir(), 'ina-raid-proc-'));
  readonly calls: string[][] = [];
  readonly guarded: Array<{ device: string; opts: unknown }> = [];
  readonly efi: string[][] = [];
  /** The on-disk tables sfdisk reads; the kernel learns of new entries only on partx. */
  readonly tables = new Map<string, Part[]>();
  /** The label sfdisk reports per disk (gpt unless set). */
  readonly labels = new Map<string, string>();
  /** Content type blkid -p reports per device. */
  readonly fsType = new Map<string, string>();
  /** Filesystem UUID and label blkid -p reports per device. */
  readonly fsUuid = new Map<string, string>();
  readonly fsLabel = new Map<string, string>();
  /** The bytes mcopy copies out of an ESP, by path (else a line naming the path). */
  readonly espFiles = new Map<string, Buffer>();
  mdstat = 'Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1048576 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n';
  espListing = '::/EFI/\n::/EFI/BOOT/\n::/EFI/BOOT/BOOTX64.EFI\n';
  nvram = 'BootCurrent: 0001\nBoot0001* UEFI PXEv4\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)\nBoot0004* ironic1 (RAID, part1)\tHD(2,GPT,aa,0x800,0x113000)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n';

  constructor(opts: { imageEsp: boolean }) {
    for (const disk of ['sda', 'sdb']) {
      this.node(`devices/pci/${disk}`, disk, { size: 8 * 1024 * MIB });
      this.node(`devices/pci/${disk}/${disk}1`, `${disk}1`, { size: 4096 * MIB, partition: 1, holders: ['md0'] });
      this.tables.set(`/dev/${disk}`, [{ node: `/dev/${disk}1`, start: 1128448, size: 4096 * 2048, type: LINUX_RAID, name: 'primary' }]);
    }
    this.node('devices/virtual/block/md0', 'md0', { size: 4096 * MIB, slaves: ['sda1', 'sdb1'] });
    if (opts.imageEsp) {
      this.node('devices/virtual/block/md0/md0p1', 'md0p1', { size: 100 * MIB, partition: 1 });
      this.node('devices/virtual/block/md0/md0p2', 'md0p2', { size: 1024 * MIB, partition: 2 });
      this.tables.set('/dev/md0', [
        { node: '/dev/md0p1', start: 2048, size: 100 * 2048, type: ESP_GUID },
        { node: '/dev/md0p2', start: 206848, size: 1024 * 2048, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' },
      ]);
      this.fsType.set('/dev/md0p1', 'vfat');
      this.fsUuid.set('/dev/md0p1', '1A2B-3C4D');
      this.fsLabel.set('/dev/md0p1', 'EFI');
    } else {
      this.node('devices/virtual/block/md0/md0p1', 'md0p1', { size: 1024 * MIB, partition: 1 });
      this.tables.set('/dev/md0', [{ node: '/dev/md0p1', start: 2048, size: 1024 * 2048, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' }]);
    }
    this.writeMdstat();
  }

  /** A block device in sysfs: the real directory and its /sys/class/block link. */
  node(path: string, name: string, o: { size: number; partition?: number; slaves?: string[]; holders?: string[] }): void {
    const dir = join(this.sys, path);
    mkdirSync(join(dir, 'holders'), { recursive: true });
    writeFileSync(join(dir, 'size'), `${o.size / 512}\n`);
    writeFileSync(join(dir, 'dev'), '8:0\n');
    if (o.partition !== undefined) writeFileSync(join(dir, 'partition'), `${o.partition}\n`);
    for (const s of o.slaves ?? []) mkdirSync(join(dir, 'slaves', s), { recursive: true });
    for (const h of o.holders ?? []) mkdirSync(join(dir, 'holders', h), { recursive: true });
    mkdirSync(join(this.sys, 'class/block'), { recursive: true });
    symlinkSync(dir, join(this.sys, 'class/block', name));
  }

  writeMdstat(): void {
    writeFileSync(join(this.proc, 'mdstat'), this.mdstat);
  }

  /** An ESP RAID left by an earlier deployment: md1 over sda2 and sdb2. */
  addEspRaid(): void {
    for (const disk of ['sda', 'sdb']) this.node(`devices/pci/${disk}/${disk}2`, `${disk}2`, { size: 550 * MIB, partition: 2, holders: ['md1'] });
    this.node('devices/virtual/block/md1', 'md1', { size: 550 * MIB - 64 * 1024, slaves: ['sda2', 'sdb2'] });
    this.mdstat = this.mdstat.replace('\nunused', 'md1 : active raid1 sdb2[1] sda2[0]\n      563136 blocks super 1.0 [2/2] [UU]\n\nunused');
    this.writeMdstat();
    this.fsType.set('/dev/md1', 'vfat');
  }

  readonly run: RunCommand = async (file, args) => {
    this.calls.push([file, ...args]);
    const last = args.at(-1)!;
    switch (file) {
      case 'sfdisk': {
        const parts = this.tables.get(last) ?? [];
        return JSON.stringify({ partitiontable: { label: this.labels.get(last) ?? 'gpt', id: 'X', device: last, unit: 'sectors', sectorsize: 512, partitions: parts } });
      }
      case 'blkid': {
        const type = this.fsType.get(last);
        if (type === undefined) throw new ToolError('blkid', 'blkid exited 2', 2);
        const [uuid, label] = [this.fsUuid.get(last), this.fsLabel.get(last)];
        return `DEVNAME=${last}\nTYPE=${type}\n${uuid ? `UUID=${uuid}\n` : ''}${label ? `LABEL=${label}\n` : ''}`;
      }
      case 'mdir':
        return this.espListing;
      case 'mcopy':
        // Out of an ESP into a local file: the file's bytes; onto an ESP: recorded only.
        if (!last.startsWith('::/')) writeFileSync(last, this.espFiles.get(args.at(-2)!.slice(3)) ?? `bytes of ${args.at(-2)}\n`);
        return '';
      case 'sgdisk':
        if (args[0] === '-F') return 'Warning: the kernel is still using the old partition table.\n2048\n';
        if (args[0] === '-n') {
          const disk = last;
          const parts = this.tables.get(disk)!;
          const bios = args[3] === '0:ef02';
          parts.push({ node: `${disk}${parts.length + 1}`, start: 2048, size: (bios ? 2 : 550) * 2048, type: bios ? BIOS_BOOT_TYPE : ESP_GUID, name: args[5]!.slice(2) });
        }
        return '';
      case 'partx':
        if (args[0] === '-a') {
          const k = last.slice('/dev/'.length);
          for (const p of this.tables.get(last) ?? []) {
            const name = p.node.slice('/dev/'.length);
            try {
              this.node(`devices/pci/${k}/${name}`, name, { size: p.size * 512, partition: Number(name.slice(k.length)) });
            } catch {
              // known already
            }
          }
        }
        return '';
      case 'mdadm': {
        const md = args[1]!.slice('/dev/'.length);
        const members = args.slice(args.indexOf('--raid-devices') + 2).map((m) => m.slice('/dev/'.length));
        this.node(`devices/virtual/block/${md}`, md, { size: 550 * MIB - 64 * 1024, slaves: members });
        return '';
      }
      default:
        return '';
    }
  };

  readonly runBytes: RunCommandBytes = async (_file, args) => {
    if (args[0] === '--version') return Buffer.from('efibootmgr version 18\n');
    if (args.length === 1 && args[0] === '-v') return Buffer.from(this.nvram);
    this.efi.push([...args]);
    return Buffer.alloc(0);
  };

  ctx(): CommandContext {
    const diskGuard = {
      check: async (device: string, opts: unknown = {}) => {
        this.guarded.push({ device, opts });
        return device;
      },
    };
    return { run: this.run, log: memoryLogger().log, diskGuard, signal: new AbortController().signal, commandName: 'install_bootloader' } as unknown as CommandContext;
  }

  install(): Promise<boolean> {
    return setupUefiBoot(this.ctx(), '/dev/md0', { root_uuid: '0x00000000', target_boot_mode: 'uefi' }, { sysRoot: this.sys, procRoot: this.proc, runBytes: this.runBytes });
  }

  /** The argv of the writing tools, in order. */
  writes(): string[][] {
    return this.calls.filter((c) => ['sgdisk', 'mdadm', 'wipefs', 'mkfs.vfat', 'mmd'].includes(c[0]!) || (c[0] === 'mcopy' && c.at(-1)!.startsWith('::/')));
  }

  cleanup(): void {
    rmSync(this.sys, { recursive: true, force: true });
    rmSync(this.proc, { recursive: true, force: true });
  }
}

let machine: FakeMachine | undefined;
const fake = (opts: { imageEsp: boolean }) => (machine = new FakeMachine(opts));
afterEach(() => machine?.cleanup());

describe('software RAID ESP: pieces', () => {
  test('holder disks are the parent disks of the md members, each once, in name order', async () => {
    const m = fake({ imageEsp: true });
    expect(await raidHolderDisks('/dev/md0', m.sys)).toEqual(['/dev/sda', '/dev/sdb']);
    await expect(raidHolderDisks('/dev/md9', m.sys)).rejects.toMatchObject({ type: 'DeviceNotFound' });
  });

  test("IPA's sgdisk and mdadm argv", () => {
    expect(sgdiskEspArgs('/dev/sdb', 2048, 1)).toEqual(['-n', '0:2048s:+550MiB', '-t', '0:ef00', '-c', '0:uefi-holder-1', '/dev/sdb']);
    expect(mdadmEspArgs('/dev/md1', ['/dev/sda2', '/dev/sdb2'])).toEqual([
      '--create', '/dev/md1', '--force', '--run', '--metadata=1.0', '--level', '1', '--name', 'esp', '--raid-devices', '2', '/dev/sda2', '/dev/sdb2',
    ]);
  });
});

describe('install_bootloader, UEFI, software RAID root', () => {
  /** IPA's filesystem copy: a FAT with the image ESP's volume ID and label, then its tree, file by file. */
  const COPY_ONTO_MD1 = [
    ['mkfs.vfat', '-n', 'EFI', '-i', '1A2B3C4D', '/dev/md1'],
    ['mmd', '-i', '/dev/md1', '::/EFI'],
    ['mmd', '-i', '/dev/md1', '::/EFI/BOOT'],
    ['mcopy', '-i', '/dev/md1', '-D', 's', expect.stringMatching(/ina-esp-copy-.*\/2$/), '::/EFI/BOOT/BOOTX64.EFI'],
  ];

  test('a new ESP RAID: partitions on each holder, mdadm, the image ESP copied then wiped', async () => {
    const m = fake({ imageEsp: true });
    await expect(m.install()).resolves.toBe(true);
    expect(m.writes()).toEqual([
      ['sgdisk', '-F', '/dev/sda'],
      ['sgdisk', '-n', '0:2048s:+550MiB', '-t', '0:ef00', '-c', '0:uefi-holder-0', '/dev/sda'],
      ['sgdisk', '-F', '/dev/sdb'],
      ['sgdisk', '-n', '0:2048s:+550MiB', '-t', '0:ef00', '-c', '0:uefi-holder-1', '/dev/sdb'],
      ['mdadm', '--create', '/dev/md1', '--force', '--run', '--metadata=1.0', '--level', '1', '--name', 'esp', '--raid-devices', '2', '/dev/sda2', '/dev/sdb2'],
      ...COPY_ONTO_MD1,
      ['wipefs', '-a', '/dev/md0p1'],
    ]);
    // The kernel is told of each new partition before it is looked for.
    const sdaNew = m.calls.findIndex((c) => c[0] === 'sgdisk' && c[1] === '-n' && c.at(-1) === '/dev/sda');
    expect(m.calls.slice(sdaNew + 1, sdaNew + 3)).toEqual([['partx', '-u', '/dev/sda'], ['partx', '-a', '/dev/sda']]);
  });

  test('one NVRAM entry per ESP member, on its disk and partition number; an old entry with the same label goes first', async () => {
    const m = fake({ imageEsp: true });
    await m.install();
    expect(m.efi).toEqual([
      ['-v', '-c', '-d', '/dev/sda', '-p', '2', '-w', '-L', 'ironic1 (RAID, part0)', '-l', '\\EFI\\BOOT\\BOOTX64.EFI'],
      ['-b', '0004', '-B'],
      ['-v', '-c', '-d', '/dev/sdb', '-p', '2', '-w', '-L', 'ironic1 (RAID, part1)', '-l', '\\EFI\\BOOT\\BOOTX64.EFI'],
    ]);
  });

  test('a BOOT.CSV label gets the RAID suffix; the CSV is read from the ESP RAID it was copied to', async () => {
    const m = fake({ imageEsp: true });
    m.espListing = '::/EFI/\n::/EFI/debian/\n::/EFI/debian/BOOTX64.CSV\n::/EFI/debian/shimx64.efi\n';
    const run = m.run;
    const withCsv: RunCommand = async (file, args, o) => {
      if (file === 'mcopy' && !args.at(-1)!.startsWith('::/')) {
        m.calls.push([file, ...args]);
        writeFileSync(args.at(-1)!, Buffer.from('shimx64.efi,debian,,This is the boot entry for debian\n', 'utf16le'));
        return '';
      }
      return run(file, args, o);
    };
    Object.defineProperty(m, 'run', { value: withCsv });
    await expect(m.install()).resolves.toBe(true);
    expect(m.efi.map((a) => a[8])).toEqual(['debian (RAID, part0)', 'debian (RAID, part1)']);
    expect(m.efi[0]![10]).toBe('\\EFI\\debian\\shimx64.efi');
    const wiped = m.calls.findIndex((c) => c[0] === 'wipefs');
    const read = m.calls.findIndex((c) => c[0] === 'mcopy' && c[2] === '/dev/md1' && c[3] === '::/EFI/debian/BOOTX64.CSV');
    expect(read).toBeGreaterThan(wiped);
  });

  test('every write is behind the disk guard: holders expecting the running md arrays, md devices allowed via the holders', async () => {
    const m = fake({ imageEsp: true });
    // The MAX volume of IPA's example layout, on the same disks.
    m.mdstat = m.mdstat.replace('\nunused', 'md5 : active raid0 sdb3[1] sda3[0]\n\nunused');
    m.writeMdstat();
    await m.install();
    const via = { allowedVia: ['/dev/sda', '/dev/sdb'] };
    expect(m.guarded).toEqual([
      { device: '/dev/md0', opts: via },
      { device: '/dev/sda', opts: { heldBy: ['/dev/md0', '/dev/md5'] } },
      { device: '/dev/sdb', opts: { heldBy: ['/dev/md0', '/dev/md5'] } },
      { device: '/dev/sda2', opts: {} },
      { device: '/dev/sdb2', opts: {} },
      { device: '/dev/md1', opts: via },
      { device: '/dev/md0p1', opts: via },
    ]);
  });

  test('an ESP RAID from an earlier deployment (raid1 holding vfat) is reused: no partitions, no mdadm', async () => {
    const m = fake({ imageEsp: true });
    m.addEspRaid();
    await expect(m.install()).resolves.toBe(true);
    expect(m.writes()).toEqual([...COPY_ONTO_MD1, ['wipefs', '-a', '/dev/md0p1']]);
    expect(m.efi.filter((a) => a[1] === '-c').map((a) => [a[3], a[5], a[8]])).toEqual([
      ['/dev/sda', '2', 'ironic1 (RAID, part0)'],
      ['/dev/sdb', '2', 'ironic1 (RAID, part1)'],
    ]);
  });

  test('a second install_bootloader (the image ESP wiped, the ESP RAID there): the loaders are read from the ESP RAID and registered again, nothing written', async () => {
    const m = fake({ imageEsp: true });
    m.addEspRaid();
    m.fsType.delete('/dev/md0p1');
    await expect(m.install()).resolves.toBe(true);
    expect(m.writes()).toEqual([]);
    expect(m.calls.filter((c) => c[0] === 'mdir').map((c) => c[2])).toEqual(['/dev/md1']);
    expect(m.efi.filter((a) => a[1] === '-c').map((a) => [a[3], a[5], a[8]])).toEqual([
      ['/dev/sda', '2', 'ironic1 (RAID, part0)'],
      ['/dev/sdb', '2', 'ironic1 (RAID, part1)'],
    ]);
  });

  test('the new ESP RAID takes the next free md name', async () => {
    const m = fake({ imageEsp: true });
    m.node('devices/virtual/block/md1', 'md1', { size: MIB });
    m.mdstat = m.mdstat.replace('\nunused', 'md2 : active raid0 sdc1[0]\n\nunused');
    m.writeMdstat();
    await m.install();
    expect(m.writes().find((c) => c[0] === 'mdadm')![2]).toBe('/dev/md3');
  });

  test('an image without an ESP: an empty ESP RAID formatted efi-part, no entries, false', async () => {
    const m = fake({ imageEsp: false });
    await expect(m.install()).resolves.toBe(false);
    expect(m.writes().map((c) => c[0])).toEqual(['sgdisk', 'sgdisk', 'sgdisk', 'sgdisk', 'mdadm', 'mkfs.vfat']);
    expect(m.writes().at(-1)).toEqual(['mkfs.vfat', '-n', 'efi-part', '/dev/md1']);
    expect(m.efi).toEqual([]);
  });

  test('an image ESP without a loader: nothing is changed, false (IPA returns before the RAID work)', async () => {
    const m = fake({ imageEsp: true });
    m.espListing = '::/EFI/\n::/EFI/debian/\n::/EFI/debian/grubx64.efi\n';
    await expect(m.install()).resolves.toBe(false);
    expect(m.writes()).toEqual([]);
    expect(m.efi).toEqual([]);
  });

  test('an image ESP larger than the ESP RAID is copied when its files fit (a partition image\'s 550 MiB ESP)', async () => {
    const m = fake({ imageEsp: true });
    m.addEspRaid();
    writeFileSync(join(m.sys, 'class/block/md0p1/size'), `${(550 * MIB) / 512}\n`);
    await expect(m.install()).resolves.toBe(true);
    expect(m.writes()).toEqual([...COPY_ONTO_MD1, ['wipefs', '-a', '/dev/md0p1']]);
  });

  test('ESP files that exceed the ESP RAID: SoftwareRAIDError before the ESP RAID is formatted; nothing wiped', async () => {
    const m = fake({ imageEsp: true });
    m.addEspRaid();
    writeFileSync(join(m.sys, 'class/block/md1/size'), '2\n');
    m.espFiles.set('EFI/BOOT/BOOTX64.EFI', Buffer.alloc(4096));
    await expect(m.install()).rejects.toMatchObject({ type: 'SoftwareRAIDError', details: 'ESP content (more than 4096 bytes) exceeds md device size (1024 bytes)' });
    expect(m.writes()).toEqual([]);
  });

  test('a label-less image ESP: the ESP RAID is labelled esp (IPA), with the same volume ID', async () => {
    const m = fake({ imageEsp: true });
    m.addEspRaid();
    m.fsLabel.delete('/dev/md0p1');
    await m.install();
    expect(m.writes()[0]).toEqual(['mkfs.vfat', '-n', 'esp', '-i', '1A2B3C4D', '/dev/md1']);
  });
});

describe('install_bootloader, UEFI target, BIOS-booted ramdisk, software RAID root: the removable-media loader on the ESP RAID', () => {
  const withoutNvram = (m: FakeMachine) =>
    setupUefiWithoutNvram(m.ctx(), '/dev/md0', { root_uuid: '0x00000000', target_boot_mode: 'uefi' }, { sysRoot: m.sys, procRoot: m.proc, arch: 'x64' });

  test('the ESP moves onto a new ESP RAID, then the shim becomes \\EFI\\BOOT\\BOOTX64.EFI there (not in the array, where no firmware reads it)', async () => {
    const m = fake({ imageEsp: true });
    m.espListing = '::/EFI/\n::/EFI/debian/\n::/EFI/debian/shimx64.efi\n::/EFI/debian/grubx64.efi\n';
    await expect(withoutNvram(m)).resolves.toBe(true);
    const writes = m.writes();
    expect(writes.filter((c) => c[0] === 'mdadm').map((c) => c[2])).toEqual(['/dev/md1']);
    const wiped = writes.findIndex((c) => c[0] === 'wipefs');
    expect(writes[wiped]).toEqual(['wipefs', '-a', '/dev/md0p1']);
    const after = writes.slice(wiped + 1);
    expect(after).toContainEqual(['mcopy', '-i', '/dev/md1', '-D', 's', '::/EFI/debian/shimx64.efi', '::/EFI/BOOT/BOOTX64.EFI']);
    expect(after.every((c) => c.includes('/dev/md1'))).toBe(true);
    expect(m.guarded.at(-1)).toEqual({ device: '/dev/md1', opts: { allowedVia: ['/dev/sda', '/dev/sdb'] } });
    expect(m.efi).toEqual([]);
  });

  test('an image ESP with the fallback loader already: moved onto the ESP RAID, nothing added', async () => {
    const m = fake({ imageEsp: true });
    await expect(withoutNvram(m)).resolves.toBe(true);
    expect(m.writes().at(-1)).toEqual(['wipefs', '-a', '/dev/md0p1']);
  });

  test('a whole-disk image without an ESP: false, an empty ESP RAID (as on the UEFI path)', async () => {
    const m = fake({ imageEsp: false });
    await expect(withoutNvram(m)).resolves.toBe(false);
    expect(m.writes().at(-1)).toEqual(['mkfs.vfat', '-n', 'efi-part', '/dev/md1']);
  });
});

describe('install_bootloader, BIOS, software RAID root: a BIOS boot partition on each GPT holder', () => {
  const ROOT_UUID = '6c7d1a2e-3f4b-4c5d-8e9f-0a1b2c3d4e5f';
  const raidRoot = () => {
    const m = fake({ imageEsp: false });
    m.fsType.set('/dev/md0p1', 'ext4');
    m.fsUuid.set('/dev/md0p1', ROOT_UUID);
    return m;
  };

  test("IPA's sgdisk argv: 2 MiB of ef02 at the first free sector, named bios-boot-part-<n>", () => {
    expect(sgdiskBiosBootArgs('/dev/sdb', 2048, 1)).toEqual(['-n', '0:2048s:+2MiB', '-t', '0:ef02', '-c', '0:bios-boot-part-1', '/dev/sdb']);
  });

  test('each GPT holder gets one, behind the disk guard that expects the running md arrays', async () => {
    const m = raidRoot();
    await ensureBiosBootPartitions(m.ctx(), ['/dev/sda', '/dev/sdb'], { procRoot: m.proc });
    expect(m.writes()).toEqual([
      ['sgdisk', '-F', '/dev/sda'],
      ['sgdisk', '-n', '0:2048s:+2MiB', '-t', '0:ef02', '-c', '0:bios-boot-part-0', '/dev/sda'],
      ['sgdisk', '-F', '/dev/sdb'],
      ['sgdisk', '-n', '0:2048s:+2MiB', '-t', '0:ef02', '-c', '0:bios-boot-part-1', '/dev/sdb'],
    ]);
    expect(m.guarded).toEqual([
      { device: '/dev/sda', opts: { heldBy: ['/dev/md0'] } },
      { device: '/dev/sdb', opts: { heldBy: ['/dev/md0'] } },
    ]);
  });

  test('a holder that has a BIOS boot partition keeps it (a second install_bootloader adds none); an MBR holder gets none', async () => {
    const m = raidRoot();
    await ensureBiosBootPartitions(m.ctx(), ['/dev/sda', '/dev/sdb'], { procRoot: m.proc });
    m.calls.length = 0;
    await ensureBiosBootPartitions(m.ctx(), ['/dev/sda', '/dev/sdb'], { procRoot: m.proc });
    expect(m.writes()).toEqual([]);

    const mbr = raidRoot();
    mbr.labels.set('/dev/sda', 'dos');
    await ensureBiosBootPartitions(mbr.ctx(), ['/dev/sda', '/dev/sdb'], { procRoot: mbr.proc });
    expect(mbr.writes().map((c) => c.at(-1))).toEqual(['/dev/sdb', '/dev/sdb']);
  });

  test('a root_uuid not on the array: DeviceNotFound before any holder is written', async () => {
    const m = raidRoot();
    const p = { root_uuid: '11111111-2222-3333-4444-555555555555', target_boot_mode: 'bios' };
    await expect(installGrub(m.ctx(), '/dev/md0', p, { sysRoot: m.sys, procRoot: m.proc })).rejects.toMatchObject({
      type: 'DeviceNotFound', details: 'No partition with UUID 11111111-2222-3333-4444-555555555555 found on device /dev/md0',
    });
    expect(m.writes()).toEqual([]);
    expect(m.calls.some((c) => c[0] === 'mount' || c[0] === 'chroot')).toBe(false);
    // The array passed the guard as allowed through its holder disks.
    expect(m.guarded).toEqual([{ device: '/dev/md0', opts: { allowedVia: ['/dev/sda', '/dev/sdb'] } }]);
  });

  test('a PReP partition on software RAID: refused before anything is read or written', async () => {
    const m = raidRoot();
    await expect(installGrub(m.ctx(), '/dev/md0', { root_uuid: ROOT_UUID, prep_boot_part_uuid: 'aa', target_boot_mode: 'bios' }, { sysRoot: m.sys, procRoot: m.proc })).rejects.toMatchObject({
      type: 'CommandExecutionError', details: expect.stringMatching(/^\/dev\/md0 is a software RAID device; .* PReP/),
    });
    expect(m.calls).toEqual([]);
  });
});
