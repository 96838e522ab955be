import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config.ts';
import { ConductorState } from '../../src/conductor/state.ts';
import { AgentError } from '../../src/errors.ts';
import { chrootEnv, grubInstallArgs, grubMkconfigArgs } from '../../src/bootloader/grub.ts';
import { createEntryArgs, decodeEfibootmgrOutput, deleteEntryArgs } from '../../src/bootloader/efibootmgr.ts';
import { ESP_TYPE_GUID, espNumberFromTable, partitionNumber } from '../../src/bootloader/esp.ts';
import { parseMdirBare } from '../../src/bootloader/esp-files.ts';
import {
  efiArchOf, efiPath, fallbackLoaderPath, findEfiBootloaders, parseBootCsv, planFallbackLoader, type EspEntry,
} from '../../src/bootloader/loaders.ts';
import { espFstabLine, fstabWithEsp } from '../../src/bootloader/root-assets.ts';
import { namesPartition } from '../../src/bootloader/uefi.ts';
import { imageExtension, type BootloaderInstallers, type InstallBootloaderParams } from '../../src/extensions/image.ts';
import type { CommandContext } from '../../src/extensions/types.ts';
import { DiskGuard } from '../../src/hardware/disk-guard.ts';
import { parseBootRecords } from '../../src/hardware/uefi-nvram.ts';
import type { RunCommand } from '../../src/run.ts';
import { memoryLogger } from '../helpers/logger.ts';

/** A file listing as os.walk would see it, from (dir, files, subdirs) triples like IPA's tests use. */
function tree(spec: Array<[string, string[], string[]]>): EspEntry[] {
  const entries: EspEntry[] = [];
  for (const [dir, subdirs, files] of spec) {
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const f of files) entries.push({ path: `${prefix}${f}`, directory: false });
    for (const d of subdirs) entries.push({ path: `${prefix}${d}`, directory: true });
  }
  return entries;
}

const files = (paths: string[]): EspEntry[] => {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...[...dirs].map((d) => ({ path: d, directory: true })), ...paths.map((p) => ({ path: p, directory: false }))];
};

// IPA's TestGetEfiBootloaders tree (test_efi_utils.py), relative to the ESP.
const CENTOS = (withCsv: boolean) =>
  tree([
    ['', ['EFI'], []],
    ['EFI', ['centos', 'BOOT'], []],
    ['EFI/centos', ['fw', 'fonts'], ['shimx64-centos.efi', ...(withCsv ? ['BOOTX64.CSV'] : []), 'MokManager.efi', 'mmx64.efi', 'shim.efi', 'fwupia32.efi', 'fwupx64.efi', 'shimx64.efi', 'grubenv', 'grubx64.efi', 'grub.cfg']],
    ['EFI/centos/fw', [], []],
    ['EFI/centos/fonts', [], ['unicode.pf2']],
    ['EFI/BOOT', [], ['BOOTX64.EFI', 'fallback.efi', 'fbx64.efi']],
  ]);

describe('boot loader search on the ESP (IPA _get_efi_bootloaders)', () => {
  test('a BOOTX64.CSV wins over every loader, even one found before it', () => {
    expect(findEfiBootloaders(CENTOS(true))).toEqual(['EFI/centos/BOOTX64.CSV']);
  });

  test('without a CSV: the removable-media loader, shim and grub do not count', () => {
    expect(findEfiBootloaders(CENTOS(false))).toEqual(['EFI/BOOT/BOOTX64.EFI']);
  });

  test('Windows: winload.efi anywhere', () => {
    expect(findEfiBootloaders(tree([['', ['WINDOWS'], []], ['WINDOWS', ['system32'], []], ['WINDOWS/system32', [], ['winload.efi']]]))).toEqual(['WINDOWS/system32/winload.efi']);
  });

  test('no known name: nothing (IPA: "Empty EFI partition detected")', () => {
    expect(findEfiBootloaders(files(['EFI/debian/shimx64.efi', 'EFI/debian/grubx64.efi']))).toEqual([]);
    expect(findEfiBootloaders([])).toEqual([]);
  });

  test('names compare case-insensitively; every match is kept in walk order (files of a directory before its subdirectories)', () => {
    const entries = files(['bootx64.efi', 'EFI/a/BootAA64.efi', 'EFI/b/grubaa64.EFI']);
    expect(findEfiBootloaders(entries)).toEqual(['bootx64.efi', 'EFI/a/BootAA64.efi', 'EFI/b/grubaa64.EFI']);
  });

  test('"csv" in a directory name does not make a loader a CSV (IPA tests the whole path)', () => {
    expect(findEfiBootloaders(files(['EFI/csvtools/BOOTX64.EFI']))).toEqual(['EFI/csvtools/BOOTX64.EFI']);
  });

  test('efibootmgr paths use backslashes from the root', () => {
    expect(efiPath('EFI/BOOT/BOOTX64.EFI')).toBe('\\EFI\\BOOT\\BOOTX64.EFI');
  });
});

describe('mdir listings', () => {
  test('bare recursive listing: paths without ::/, directories marked', () => {
    const out = '::/EFI/\n::/EFI/debian/\n::/EFI/BOOT/\n::/EFI/debian/shimx64.efi\n::/EFI/debian/BOOTX64.CSV\n::/EFI/debian/fonts/\n::/EFI/debian/my loader.efi\n';
    expect(parseMdirBare(out)).toEqual([
      { path: 'EFI', directory: true },
      { path: 'EFI/debian', directory: true },
      { path: 'EFI/BOOT', directory: true },
      { path: 'EFI/debian/shimx64.efi', directory: false },
      { path: 'EFI/debian/BOOTX64.CSV', directory: false },
      { path: 'EFI/debian/fonts', directory: true },
      { path: 'EFI/debian/my loader.efi', directory: false },
    ]);
  });

  test('mdir order makes the same walk as os.walk on a vfat mount', () => {
    const out = '::/EFI/\n::/EFI/debian/\n::/EFI/BOOT/\n::/EFI/debian/BOOTX64.CSV\n::/EFI/BOOT/BOOTX64.EFI\n';
    expect(findEfiBootloaders(parseMdirBare(out))).toEqual(['EFI/debian/BOOTX64.CSV']);
  });
});

// Debian 12's /usr/lib/shim/BOOTX64.CSV (shim-unsigned 16.1): UCS-2 little-endian, no BOM.
const DEBIAN_CSV = Buffer.from('shimx64.efi,debian,,This is the boot entry for debian\n', 'utf16le');
const utf16be = (s: string) => Buffer.from(s, 'utf16le').swap16();

describe('BOOT.CSV (shim fallback format)', () => {
  test("Debian's CSV: loader and label", () => {
    expect(DEBIAN_CSV.length).toBe(108);
    expect(parseBootCsv(DEBIAN_CSV, 'x')).toEqual({ loader: 'shimx64.efi', label: 'debian' });
  });

  test("with a BOM, as Fedora and RHEL write it; big-endian with its BOM", () => {
    const fedora = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('shimx64.efi,Fedora,,This is the boot entry for Fedora\n', 'utf16le')]);
    expect(parseBootCsv(fedora, 'x')).toEqual({ loader: 'shimx64.efi', label: 'Fedora' });
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be('shimx64.efi,Red Hat Enterprise Linux,,x\n')]);
    expect(parseBootCsv(be, 'x')).toEqual({ loader: 'shimx64.efi', label: 'Red Hat Enterprise Linux' });
  });

  test('fields are trimmed: a CSV without a description gives the label without its newline', () => {
    expect(parseBootCsv(Buffer.from('grubx64.efi,centos\r\n', 'utf16le'), 'x')).toEqual({ loader: 'grubx64.efi', label: 'centos' });
    expect(parseBootCsv(Buffer.from(' grubx64.efi , centos ,,\n', 'utf16le'), 'x')).toEqual({ loader: 'grubx64.efi', label: 'centos' });
  });

  test('the first entry is used; blank lines before it are skipped', () => {
    expect(parseBootCsv(Buffer.from('\nshimx64.efi,one,,\nshimx64.efi,two,,\n', 'utf16le'), 'x').label).toBe('one');
  });

  test('an ASCII CSV (no NUL bytes) is read as text instead of CJK garbage', () => {
    expect(parseBootCsv(Buffer.from('shimx64.efi,debian,,\n'), 'x')).toEqual({ loader: 'shimx64.efi', label: 'debian' });
  });

  test('refused: odd UTF-16, no label, empty, a path instead of a file name', () => {
    const bad: Array<[Buffer, RegExp]> = [
      [Buffer.concat([DEBIAN_CSV, Buffer.from([0x41])]), /is not UTF-16 text/],
      [Buffer.from('shimx64.efi\n', 'utf16le'), /does not have the form "loader,label,\.\.\."/],
      [Buffer.from('\n\n', 'utf16le'), /is empty/],
      [Buffer.from('../../x.efi,evil,,\n', 'utf16le'), /not a file name in its directory/],
      [Buffer.from('EFI\\x.efi,evil,,\n', 'utf16le'), /not a file name in its directory/],
    ];
    for (const [bytes, msg] of bad) {
      expect(() => parseBootCsv(bytes, 'EFI/x/BOOTX64.CSV')).toThrow(msg);
    }
    try {
      parseBootCsv(Buffer.from('x', 'utf16le'), 'w');
    } catch (err) {
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).type).toBe('CommandExecutionError');
    }
  });
});

// IPA's test_get_boot_records output (test_efi_utils.py), byte for byte; tabs and spaces as there.
const IPA_EFIBOOTMGR = `
BootCurrent: 0001
Timeout: 0 seconds
BootOrder: 0001,0000,001B,001C,001D,001E,001F,0020,0021,0022,0012,0011,0023,0024,0002
Boot0000* Red Hat Enterprise Linux\tHD(1,GPT,34178504-2340-4fe0-8001-264372cf9b2d,0x800,0x64000)/File(\\EFI\\redhat\\shimx64.efi)
Boot0001* Fedora\tHD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\fedora\\shimx64.efi)
Boot0002* Linux-Firmware-Updater\tHD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\fedora\\fwupdx64.efi)
Boot0003  ThinkShield secure wipe\tFvFile(3593a0d5-bd52-43a0-808e-cbff5ece2477)
Boot0004  LENOVO CLOUD\tVenMsg(bc7838d2-0f82-4d60-8316-c068ee79d25b,ad38ccbbf7edf04d959cf42aa74d3650)/Uri(https://download.lenovo.com/pccbbs/cdeploy/efi/boot.efi)
Boot0005  IDER BOOT CDROM\tPciRoot(0x0)/Pci(0x14,0x0)/USB(11,1)
Boot0006 ATA HDD\tVenMsg(bc7838d2-0f82-4d60-8316-c068ee79d25b,91af625956449f41a7b91f4f892ab0f6)
Boot0007* Hard drive C: VenHw(d6c0639f-c705-4eb9-aa4f-5802d8823de6)......................................................................................A.....................P.E.R.C. .H.7.3.0.P. .M.i.n.i.(.b.u.s. .1.8. .d.e.v. .0.0.)...
BootAAA8* IBA GE Slot 0100 v1588        BBS(128,IBA GE Slot 0100 v1588,0x0)........................B.............................................................A.....................I.B.A. .G.E. .S.l.o.t. .0.1.0.0. .v.1.5.8.8...
Boot0FF9* Virtual CD/DVD        PciRoot(0x0)/Pci(0x14,0x0)/USB(13,0)/USB(3,0)/USB(1,0)
Boot123A* Integrated NIC 1 Port 1 Partition 1   VenHw(33391845-5f86-4e78-8fce-c4cff59f9bbb)
Boot000B* UEFI: PXE IPv4 Realtek PCIe 2.5GBE Family Controller\tPciRoot(0x0)/Pci(0x1c,0x0)/Pci(0x0,0x0)/MAC([REDACTED],0)/IPv4(0.0.0.00.0.0.0,0,0)..BO
Boot0008* Generic USB Boot UsbClass(ffff,ffff,255,255)
Boot0009* Internal CD/DVD ROM Drive (UEFI)      PciRoot(0x0)/Pci(0x11,0x0)/Sata(1,65535,0)/CDROM(1,0x265,0x2000)
`;

const EXPECTED = [
  ['0000', 'Red Hat Enterprise Linux', 'HD(1,GPT,34178504-2340-4fe0-8001-264372cf9b2d,0x800,0x64000)/File(\\EFI\\redhat\\shimx64.efi)'],
  ['0001', 'Fedora', 'HD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\fedora\\shimx64.efi)'],
  ['0002', 'Linux-Firmware-Updater', 'HD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\fedora\\fwupdx64.efi)'],
  ['0003', 'ThinkShield secure wipe', 'FvFile(3593a0d5-bd52-43a0-808e-cbff5ece2477)'],
  ['0004', 'LENOVO CLOUD', 'VenMsg(bc7838d2-0f82-4d60-8316-c068ee79d25b,ad38ccbbf7edf04d959cf42aa74d3650)/Uri(https://download.lenovo.com/pccbbs/cdeploy/efi/boot.efi)'],
  ['0005', 'IDER BOOT CDROM', 'PciRoot(0x0)/Pci(0x14,0x0)/USB(11,1)'],
  ['0006', 'ATA HDD', 'VenMsg(bc7838d2-0f82-4d60-8316-c068ee79d25b,91af625956449f41a7b91f4f892ab0f6)'],
  ['0007', 'Hard drive C:', expect.stringMatching(/^VenHw\(d6c0639f/)],
  ['AAA8', 'IBA GE Slot 0100 v1588', expect.stringMatching(/^BBS\(128,/)],
  ['0FF9', 'Virtual CD/DVD', 'PciRoot(0x0)/Pci(0x14,0x0)/USB(13,0)/USB(3,0)/USB(1,0)'],
  ['123A', 'Integrated NIC 1 Port 1 Partition 1', 'VenHw(33391845-5f86-4e78-8fce-c4cff59f9bbb)'],
  ['000B', 'UEFI: PXE IPv4 Realtek PCIe 2.5GBE Family Controller', 'PciRoot(0x0)/Pci(0x1c,0x0)/Pci(0x0,0x0)/MAC([REDACTED],0)/IPv4(0.0.0.00.0.0.0,0,0)..BO'],
  ['0008', 'Generic USB Boot', 'UsbClass(ffff,ffff,255,255)'],
  ['0009', 'Internal CD/DVD ROM Drive (UEFI)', 'PciRoot(0x0)/Pci(0x11,0x0)/Sata(1,65535,0)/CDROM(1,0x265,0x2000)'],
];
const records = (out: Buffer) => parseBootRecords(decodeEfibootmgrOutput(out)).map((r) => [r.number, r.label, r.path]);

describe('efibootmgr -v output (IPA get_boot_records)', () => {
  test("IPA's recorded output as UTF-16 (with Python's BOM): all 14 records", () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(IPA_EFIBOOTMGR, 'utf16le')]);
    expect(records(bytes)).toEqual(EXPECTED);
  });

  test('the same as UTF-8 (what efibootmgr 17 prints)', () => {
    expect(records(Buffer.from(IPA_EFIBOOTMGR, 'utf8'))).toEqual(EXPECTED);
  });

  test('UTF-16 without a BOM is little-endian; big-endian needs its BOM', () => {
    expect(records(Buffer.from(IPA_EFIBOOTMGR, 'utf16le'))).toEqual(EXPECTED);
    expect(records(Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(IPA_EFIBOOTMGR)]))).toEqual(EXPECTED);
  });

  test('UTF-8 output decoded as UTF-16 has no "BootCurrent: " line, so UTF-8 is used; a non-ASCII label survives', () => {
    const out = 'BootCurrent: 0000\nTimeout: 1 seconds\nBootOrder: 0000\nBoot0000* Débian\tHD(1,GPT,5513b39e-0f04-4edf-92a6-e3fbc1976e05,0x800,0x32000)/File(\\EFI\\debian\\shimx64.efi)\n';
    expect(records(Buffer.from(out))).toEqual([['0000', 'Débian', 'HD(1,GPT,5513b39e-0f04-4edf-92a6-e3fbc1976e05,0x800,0x32000)/File(\\EFI\\debian\\shimx64.efi)']]);
  });

  test('inactive entries (no star) and entries with optional data as efibootmgr 17 prints them', () => {
    const out = 'BootCurrent: 0001\nBootOrder: 0001,0000\nBoot0000  ironic1\tHD(1,GPT,5513b39e-0f04-4edf-92a6-e3fbc1976e05,0x800,0x32000)/File(\\EFI\\BOOT\\BOOTX64.EFI)\nBoot0001* debian\tHD(1,GPT,5513b39e-0f04-4edf-92a6-e3fbc1976e05,0x800,0x32000)/File(\\EFI\\debian\\shimx64.efi)..B.O\n';
    expect(records(Buffer.from(out)).map((r) => r.slice(0, 2))).toEqual([['0000', 'ironic1'], ['0001', 'debian']]);
  });

  test("IPA's argv for creating and deleting entries", () => {
    expect(createEntryArgs('/dev/fake', 1, 'ironic1', '\\EFI\\BOOT\\BOOTX64.EFI')).toEqual(['-v', '-c', '-d', '/dev/fake', '-p', '1', '-w', '-L', 'ironic1', '-l', '\\EFI\\BOOT\\BOOTX64.EFI']);
    expect(deleteEntryArgs('0003')).toEqual(['-b', '0003', '-B']);
  });
});

describe('the removable-media loader for a ramdisk without NVRAM', () => {
  const debian = files(['EFI/debian/shimx64.efi', 'EFI/debian/grubx64.efi', 'EFI/debian/mmx64.efi', 'EFI/debian/fbx64.efi', 'EFI/debian/BOOTX64.CSV', 'EFI/debian/grub.cfg', 'EFI/debian/fonts/unicode.pf2']);

  test('names per architecture', () => {
    expect(fallbackLoaderPath(efiArchOf('x64'))).toBe('EFI/BOOT/BOOTX64.EFI');
    expect(fallbackLoaderPath(efiArchOf('arm64'))).toBe('EFI/BOOT/BOOTAA64.EFI');
    expect(fallbackLoaderPath(efiArchOf('aarch64'))).toBe('EFI/BOOT/BOOTAA64.EFI');
    expect(() => efiArchOf('s390x')).toThrow(/no UEFI removable-media loader name/);
  });

  test('with a CSV: its shim becomes BOOTX64.EFI, beside it grub, MokManager and fallback (which writes NVRAM from the CSV on first boot), grub.cfg; never the CSV', () => {
    expect(planFallbackLoader(debian, 'x64', 'EFI/debian/shimx64.efi')).toEqual({
      loader: 'EFI/debian/shimx64.efi',
      copies: [
        { from: 'EFI/debian/shimx64.efi', to: 'EFI/BOOT/BOOTX64.EFI' },
        { from: 'EFI/debian/grubx64.efi', to: 'EFI/BOOT/grubx64.efi' },
        { from: 'EFI/debian/mmx64.efi', to: 'EFI/BOOT/mmx64.efi' },
        { from: 'EFI/debian/fbx64.efi', to: 'EFI/BOOT/fbx64.efi' },
        { from: 'EFI/debian/grub.cfg', to: 'EFI/BOOT/grub.cfg' },
      ],
    });
  });

  test('without a CSV: shim still preferred, but no fallback.efi (it would find no CSV)', () => {
    const plan = planFallbackLoader(debian.filter((e) => !e.path.endsWith('.CSV')), 'x64');
    expect(plan?.loader).toBe('EFI/debian/shimx64.efi');
    expect(plan?.copies.map((c) => c.to)).toEqual(['EFI/BOOT/BOOTX64.EFI', 'EFI/BOOT/grubx64.efi', 'EFI/BOOT/mmx64.efi', 'EFI/BOOT/grub.cfg']);
  });

  test('grub alone when there is no shim; the arm64 names on arm64', () => {
    expect(planFallbackLoader(files(['EFI/ubuntu/grubx64.efi']), 'x64')?.copies).toEqual([{ from: 'EFI/ubuntu/grubx64.efi', to: 'EFI/BOOT/BOOTX64.EFI' }]);
    expect(planFallbackLoader(files(['EFI/ubuntu/shimx64.efi', 'EFI/fedora/shimaa64.efi']), 'aa64')?.copies[0]).toEqual({ from: 'EFI/fedora/shimaa64.efi', to: 'EFI/BOOT/BOOTAA64.EFI' });
  });

  test('nothing to do when the image has its fallback loader (any case), nothing possible without a loader for this architecture', () => {
    expect(planFallbackLoader(files(['efi/boot/bootx64.efi', 'EFI/debian/shimx64.efi']), 'x64')).toBeUndefined();
    expect(planFallbackLoader(files(['EFI/debian/shimaa64.efi']), 'x64')).toBeUndefined();
    expect(planFallbackLoader([], 'x64')).toBeUndefined();
  });

  test("an existing EFI/boot keeps its spelling, and files it has already are not copied", () => {
    const plan = planFallbackLoader(files(['efi/debian/shimx64.efi', 'efi/debian/grubx64.efi', 'efi/boot/GRUBX64.EFI']), 'x64');
    expect(plan?.copies).toEqual([{ from: 'efi/debian/shimx64.efi', to: 'efi/boot/BOOTX64.EFI' }]);
  });
});

describe('finding the ESP in the partition table (IPA find_efi_partition)', () => {
  const gpt = (types: string[]) => ({ label: 'gpt', id: null, sectorSize: 512, partitions: types.map((type, i) => ({ node: `/dev/loop3p${i + 1}`, start: 2048, size: 2048, type, uuid: null, name: null })) });
  test('gpt: the ESP type GUID (parted shows it as the esp/boot flags), the first one', () => {
    expect(espNumberFromTable('/dev/loop3', gpt(['21686148-6449-6E6F-744E-656564454649', ESP_TYPE_GUID, ESP_TYPE_GUID]))).toBe(2);
    expect(espNumberFromTable('/dev/loop3', gpt(['0FC63DAF-8483-4772-8E79-3D69D8477DE4']))).toBeUndefined();
    expect(espNumberFromTable('/dev/loop3', gpt([ESP_TYPE_GUID.toLowerCase()]))).toBe(1);
  });
  test('msdos: type 0xef; the boot (active) flag does not make an ESP', () => {
    const dos = { label: 'dos', id: '0x1', sectorSize: 512, partitions: [{ node: '/dev/sda1', start: 2048, size: 1, type: '83', uuid: null, name: null }, { node: '/dev/sda2', start: 4096, size: 1, type: 'ef', uuid: null, name: null }] };
    expect(espNumberFromTable('/dev/sda', dos)).toBe(2);
    expect(espNumberFromTable('/dev/sda', { ...dos, partitions: dos.partitions.slice(0, 1) })).toBeUndefined();
  });
  test('partition numbers from node names', () => {
    expect(partitionNumber('/dev/loop3', '/dev/loop3p12')).toBe(12);
    expect(partitionNumber('/dev/sda', '/dev/sda2')).toBe(2);
    expect(partitionNumber('/dev/nvme0n1', '/dev/nvme0n1p1')).toBe(1);
    expect(partitionNumber('/dev/sda', '/dev/sdb1')).toBeUndefined();
  });
});

describe('small decisions', () => {
  test('root_uuid names a partition only when it is not a disk id', () => {
    expect(namesPartition('0x00000000')).toBe(false);
    expect(namesPartition('0x5a3b1c2d')).toBe(false);
    expect(namesPartition(null)).toBe(false);
    expect(namesPartition(undefined)).toBe(false);
    expect(namesPartition('')).toBe(false);
    expect(namesPartition('6c7d1a2e-3f4b-4c5d-8e9f-0a1b2c3d4e5f')).toBe(true);
    expect(namesPartition('AB0E-1A42')).toBe(true);
  });

  test("fstab: IPA's line; appended once; a last line without newline is not swallowed", () => {
    expect(espFstabLine('UUID', 'AB0E-1A42')).toBe('UUID=AB0E-1A42\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
    expect(fstabWithEsp('/dev/root / ext4 defaults 0 1\n', 'UUID', 'AB0E-1A42')).toBe('/dev/root / ext4 defaults 0 1\nUUID=AB0E-1A42\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
    expect(fstabWithEsp('LABEL=root / ext4 defaults 0 1', 'PARTUUID', 'x')).toBe('LABEL=root / ext4 defaults 0 1\nPARTUUID=x\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
    expect(fstabWithEsp('UUID=AB0E-1A42 /boot/efi vfat defaults 0 2\n', 'UUID', 'AB0E-1A42')).toBeUndefined();
    expect(fstabWithEsp('', 'UUID', 'u')).toBe('UUID=u\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
  });

  test("grub argv and environment as IPA's _install_grub2 and _configure_grub use them", () => {
    expect(grubInstallArgs('/tmp/r', 'grub', '/dev/sda')).toEqual(['/tmp/r', 'grub-install', '/dev/sda']);
    expect(grubMkconfigArgs('/tmp/r', 'grub2')).toEqual(['/tmp/r', 'grub2-mkconfig', '-o', '/boot/grub2/grub.cfg']);
    expect(chrootEnv({ GRUB_DISABLE_OS_PROBER: 'true' })).toEqual({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', LANG: 'C', GRUB_DISABLE_OS_PROBER: 'true' });
  });
});

// The decision flow of image.install_bootloader (spec §7.3), with recording installers.
const LSBLK = JSON.stringify({ blockdevices: [{ kname: 'sda', model: null, size: 8 * 2 ** 30, rota: false, type: 'disk', serial: null, wwn: null, 'log-sec': 512, 'phy-sec': 512, tran: null, pkname: null }] });
const uefiSys = mkdtempSync(join(tmpdir(), 'ina-sys-'));
mkdirSync(join(uefiSys, 'firmware/efi'), { recursive: true });
afterAll(() => rmSync(uefiSys, { recursive: true, force: true }));

function flow(behaviour: { uefi?: boolean | Error; nvramless?: boolean | Error; bios?: Error }, opts: { uefiRamdisk?: boolean; biosAllowed?: boolean; flags?: Record<string, boolean> } = {}) {
  const calls: string[] = [];
  const act = (name: string, v: boolean | Error | undefined) => async () => {
    calls.push(name);
    if (v instanceof Error) throw v;
    return v ?? false;
  };
  const installers: BootloaderInstallers = {
    uefi: act('uefi', behaviour.uefi),
    uefiWithoutNvram: act('uefiWithoutNvram', behaviour.nvramless),
    bios: async () => {
      calls.push('bios');
      if (behaviour.bios) throw behaviour.bios;
    },
  };
  const ext = imageExtension(installers, { sysRoot: opts.uefiRamdisk ? uefiSys : join(uefiSys, 'nothing') });
  const logger = memoryLogger();
  const conductor = new ConductorState();
  if (opts.biosAllowed) conductor.settings = { heartbeatTimeout: 300, enableBiosBootloaderInstall: true };
  const run: RunCommand = async () => LSBLK;
  const ctx = {
    config: resolveConfig({ kernelParams: new Map(), flags: { ...opts.flags } }),
    run, log: logger.log, conductor, diskGuard: new DiskGuard({ allowDevices: [] }),
    refreshNode: async () => undefined, setProgress: () => undefined, signal: new AbortController().signal, commandName: 'install_bootloader',
  } as unknown as CommandContext;
  const install = (params: InstallBootloaderParams) => ext.commands.install_bootloader!.run(params, ctx);
  return { install, calls, logs: logger.lines };
}

const PART = { root_uuid: '6c7d1a2e-3f4b-4c5d-8e9f-0a1b2c3d4e5f', efi_system_part_uuid: 'AB0E-1A42' };

describe('image.install_bootloader decisions', () => {
  test('UEFI ramdisk: NVRAM registration; success ends the command', async () => {
    const f = flow({ uefi: true }, { uefiRamdisk: true });
    await expect(f.install({ ...PART, target_boot_mode: 'uefi' })).resolves.toBeNull();
    expect(f.calls).toEqual(['uefi']);
  });

  test('UEFI ramdisk, empty ESP: falls through to grub, which is disallowed by default (InvalidImage)', async () => {
    const f = flow({ uefi: false }, { uefiRamdisk: true });
    await expect(f.install({ ...PART, target_boot_mode: 'uefi' })).rejects.toMatchObject({ type: 'InvalidImage', details: expect.stringMatching(/CVE-2026-43003/) });
    expect(f.calls).toEqual(['uefi']);
  });

  test('BIOS ramdisk, UEFI target: the removable-media path, with the mismatch warning', async () => {
    const f = flow({ nvramless: true });
    await expect(f.install({ ...PART, target_boot_mode: 'uefi' })).resolves.toBeNull();
    expect(f.calls).toEqual(['uefiWithoutNvram']);
    expect(f.logs().some((l) => /Boot mode mismatch: target boot mode is uefi, current boot mode is bios/.test(String(l.msg)))).toBe(true);
  });

  test('BIOS ramdisk, UEFI target, whole-disk image the path leaves alone: success as IPA', async () => {
    const f = flow({ nvramless: false });
    await expect(f.install({ root_uuid: '0x00000000', target_boot_mode: 'uefi' })).resolves.toBeNull();
    expect(f.calls).toEqual(['uefiWithoutNvram']);
  });

  test('BIOS ramdisk, BIOS target (or none, IPA\'s default): no UEFI work; grub when allowed', async () => {
    const f = flow({}, { biosAllowed: true });
    await expect(f.install({ root_uuid: PART.root_uuid, target_boot_mode: 'bios' })).resolves.toBeNull();
    await expect(f.install({ root_uuid: PART.root_uuid })).resolves.toBeNull();
    expect(f.calls).toEqual(['bios', 'bios']);
  });

  test('grub disallowed: InvalidImage, unless ignore_bootloader_failure (param or option)', async () => {
    await expect(flow({}).install({ root_uuid: PART.root_uuid, target_boot_mode: 'bios' })).rejects.toMatchObject({ type: 'InvalidImage' });
    await expect(flow({}).install({ root_uuid: PART.root_uuid, ignore_bootloader_failure: true })).resolves.toBeNull();
    await expect(flow({}, { flags: { 'ignore-bootloader-failure': true } }).install({ root_uuid: PART.root_uuid })).resolves.toBeNull();
    await expect(flow({}, { flags: { 'ignore-bootloader-failure': true } }).install({ root_uuid: PART.root_uuid, ignore_bootloader_failure: false })).rejects.toMatchObject({ type: 'InvalidImage' });
  });

  test('a UEFI failure fails the command unless ignored; ignored, IPA goes on to the whole-disk check', async () => {
    const err = new AgentError('DeviceNotFound', 404, 'x', 'no ESP');
    await expect(flow({ nvramless: err }).install({ ...PART, target_boot_mode: 'uefi' })).rejects.toBe(err);
    const f = flow({ uefi: err }, { uefiRamdisk: true });
    await expect(f.install({ root_uuid: '0x00000000', target_boot_mode: 'uefi', ignore_bootloader_failure: true })).resolves.toBeNull();
    expect(f.calls).toEqual(['uefi']);
  });

  test('a grub failure fails the command unless ignored', async () => {
    const err = new AgentError('CommandExecutionError', 500, 'x', 'grub-install failed');
    await expect(flow({ bios: err }, { biosAllowed: true }).install({ root_uuid: PART.root_uuid, target_boot_mode: 'bios' })).rejects.toBe(err);
    await expect(flow({ bios: err }, { biosAllowed: true }).install({ root_uuid: PART.root_uuid, target_boot_mode: 'bios', ignore_bootloader_failure: true })).resolves.toBeNull();
  });
});
