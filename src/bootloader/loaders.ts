import { commandExecution } from '../errors.ts';

/**
 * Which boot loaders an ESP holds, decided on its file list alone (pure, so every rule is
 * unit-tested). Paths are relative to the ESP's root with `/` separators, spelled as the
 * filesystem has them: `EFI/debian/BOOTX64.CSV`.
 */
export interface EspEntry {
  path: string;
  directory: boolean;
}

/**
 * IPA's BOOTLOADERS_EFI (efi_utils.py), compared lower-cased. shimx64.efi and grubx64.efi are
 * not in it: IPA only finds them through a BOOT.CSV or the removable-media names.
 */
export const BOOTLOADERS_EFI: readonly string[] = [
  'bootx64.csv', 'bootaa64.csv', 'boot.csv',
  'bootia32.efi', 'bootx64.efi', 'bootia64.efi', 'bootarm.efi', 'bootaa64.efi',
  'bootriscv32.efi', 'bootriscv64.efi', 'bootriscv128.efi', 'grubaa64.efi', 'winload.efi',
];

const isCsv = (path: string) => basename(path).toLowerCase().endsWith('.csv');

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/**
 * The directory tree as os.walk sees it top-down: each directory's files in the order the
 * filesystem lists them, then its subdirectories in that order. mdir lists FAT directory
 * entries in on-disk order, the order a vfat mount's readdir (and so IPA's os.walk) returns.
 */
function walk(entries: readonly EspEntry[]): Array<{ dir: string; files: string[] }> {
  const children = new Map<string, EspEntry[]>();
  for (const e of entries) {
    const parent = dirname(e.path);
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(e);
  }
  const out: Array<{ dir: string; files: string[] }> = [];
  const visit = (dir: string, depth: number) => {
    const list = children.get(dir) ?? [];
    out.push({ dir, files: list.filter((e) => !e.directory).map((e) => e.path) });
    // A FAT tree cannot loop, but a corrupt one could list absurd depths.
    if (depth > 64) return;
    for (const sub of list.filter((e) => e.directory)) visit(sub.path, depth + 1);
  };
  visit('', 0);
  return out;
}

/**
 * IPA's _get_efi_bootloaders: every file whose name (any case) is in BOOTLOADERS_EFI, in walk
 * order; the first CSV found wins outright and is returned alone. IPA also requires the
 * executable bit, which every file on a vfat mount has (the default fmask leaves x set), so
 * from a FAT listing every match counts. IPA tests "csv" against the whole path including
 * its temporary mount point; here only the file name decides.
 */
export function findEfiBootloaders(entries: readonly EspEntry[]): string[] {
  const found: string[] = [];
  for (const { files } of walk(entries)) {
    for (const path of files) {
      if (!BOOTLOADERS_EFI.includes(basename(path).toLowerCase())) continue;
      if (isCsv(path)) return [path];
      found.push(path);
    }
  }
  return found;
}

/** `EFI/BOOT/BOOTX64.EFI` -> `\EFI\BOOT\BOOTX64.EFI`, the form efibootmgr -l and NVRAM take. */
export function efiPath(path: string): string {
  return `\\${path.replace(/\//g, '\\')}`;
}

export interface BootCsv {
  /** The loader's file name, in the CSV's directory. */
  loader: string;
  label: string;
}

/**
 * shim's BOOT.CSV (what its fallback.efi reads): UCS-2 text, one entry per line,
 * `loader,label,options,description`. Debian writes it little-endian without a BOM, Fedora
 * and RHEL with one (FF FE). IPA decodes it as Python's 'utf-16' (a BOM decides, else
 * little-endian) and uses the first two fields of the first entry as they are; here the
 * fields are also trimmed (a CSV without a description would otherwise give a label ending
 * in a newline) and a CSV without NUL bytes is read as UTF-8 (hand-written CSVs), which
 * IPA would turn into CJK garbage.
 */
export function parseBootCsv(bytes: Buffer, where: string): BootCsv {
  const text = decodeUtf16Text(bytes, where);
  const line = text.split(/\r?\n/).find((l) => l.trim() !== '');
  if (line === undefined) throw commandExecution(`${where} is empty: it names no boot loader`);
  const fields = line.split(',');
  const loader = fields[0]!.trim();
  const label = (fields[1] ?? '').trim();
  if (loader === '' || label === '') throw commandExecution(`${where} does not have the form "loader,label,...": ${JSON.stringify(line)}`);
  // shim's fallback opens the loader in the CSV's own directory; a path would leave it.
  if (/[\\/]/.test(loader) || loader === '.' || loader === '..') {
    throw commandExecution(`${where} names ${JSON.stringify(loader)}, which is not a file name in its directory`);
  }
  return { loader, label };
}

function decodeUtf16Text(bytes: Buffer, where: string): string {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return utf16(bytes.subarray(2), 'le', where);
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return utf16(bytes.subarray(2), 'be', where);
  if (!bytes.includes(0)) return new TextDecoder('utf-8', { fatal: false }).decode(bytes).replace(/^\uFEFF/, '');
  return utf16(bytes, 'le', where);
}

function utf16(bytes: Buffer, order: 'le' | 'be', where: string): string {
  if (bytes.length % 2 !== 0) throw commandExecution(`${where} is not UTF-16 text (an odd number of bytes)`);
  const le = order === 'le' ? bytes : Buffer.from(bytes).swap16();
  return new TextDecoder('utf-16le', { fatal: false }).decode(le);
}

/** UEFI's architecture suffixes (UEFI spec 2.10 §3.5.1.1: removable media boot behaviour). */
export type EfiArch = 'x64' | 'aa64' | 'ia32' | 'riscv64' | 'arm';

/** The suffix for a Node `process.arch` or a kernel `uname -m`. */
export function efiArchOf(arch: string): EfiArch {
  switch (arch) {
    case 'x64': case 'x86_64': case 'amd64': return 'x64';
    case 'arm64': case 'aarch64': return 'aa64';
    case 'ia32': case 'x86': case 'i686': case 'i386': return 'ia32';
    case 'riscv64': return 'riscv64';
    case 'arm': case 'armv7l': return 'arm';
    default: throw commandExecution(`no UEFI removable-media loader name is defined for the architecture ${arch}`);
  }
}

/** `EFI/BOOT/BOOTX64.EFI`: what firmware starts when no NVRAM entry works (UEFI §3.5.1.1). */
export function fallbackLoaderPath(arch: EfiArch): string {
  return `EFI/BOOT/BOOT${arch.toUpperCase()}.EFI`;
}

const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** The entry of `path` in the listing, compared as FAT compares names (case-insensitively). */
export function findEntry(entries: readonly EspEntry[], path: string): EspEntry | undefined {
  return entries.find((e) => sameName(e.path, path));
}

export interface FallbackCopy {
  /** Path on the ESP to copy from. */
  from: string;
  /** Path on the ESP to copy to. */
  to: string;
}

export interface FallbackPlan {
  /** The loader that becomes BOOT<ARCH>.EFI. */
  loader: string;
  copies: FallbackCopy[];
}

/**
 * How to give an ESP the removable-media loader it lacks, from the loaders it has: the loader
 * a BOOT.CSV names (shim, normally), else shim<arch>.efi, else grub<arch>.efi, else another
 * loader IPA's list knows for this architecture, becomes EFI/BOOT/BOOT<ARCH>.EFI. What that
 * loader loads next lives in its own directory (shim loads grub<arch>.efi and mm<arch>.efi
 * from where it was started; grub reads grub.cfg from there first), so those files are copied
 * beside it. shim's fb<arch>.efi is copied only when a BOOT.CSV exists: started from EFI/BOOT,
 * shim runs fallback, which writes the NVRAM entries from the CSV on the first boot (what IPA
 * would have done with efibootmgr) and needs the CSV to find them. Undefined when the ESP has
 * the loader already or no loader for this architecture.
 */
export function planFallbackLoader(entries: readonly EspEntry[], arch: EfiArch, csvLoader?: string): FallbackPlan | undefined {
  const target = fallbackLoaderPath(arch);
  if (findEntry(entries, target)) return undefined;
  const files = walk(entries).flatMap((d) => d.files);
  // A vendor directory's loader before one already in EFI/BOOT: the vendor's set is complete.
  const inBoot = (f: string) => sameName(dirname(f), 'EFI/BOOT');
  const ordered = [...files.filter((f) => !inBoot(f)), ...files.filter(inBoot)];
  const named = (name: string) => ordered.find((f) => sameName(basename(f), name));
  const loader =
    (csvLoader !== undefined ? files.find((f) => sameName(f, csvLoader)) : undefined) ??
    named(`shim${arch}.efi`) ??
    named(`grub${arch}.efi`) ??
    named(`boot${arch}.efi`);
  if (loader === undefined) return undefined;
  // Keep the directory's existing spelling (EFI/boot) if there is one: FAT cannot hold both.
  const bootDir = findEntry(entries, 'EFI/BOOT')?.path ?? findEntry(entries, 'EFI')?.path.concat('/BOOT') ?? 'EFI/BOOT';
  const copies: FallbackCopy[] = [{ from: loader, to: `${bootDir}/${basename(target)}` }];
  const dir = dirname(loader);
  if (!sameName(dir, bootDir)) {
    for (const f of files) {
      if (dirname(f) !== dir || f === loader) continue;
      const name = basename(f).toLowerCase();
      const wanted = name.endsWith('.efi') ? csvLoader !== undefined || name !== `fb${arch}.efi` : name === 'grub.cfg' || name === 'grubenv';
      if (!wanted || findEntry(entries, `${bootDir}/${basename(f)}`)) continue;
      copies.push({ from: f, to: `${bootDir}/${basename(f)}` });
    }
  }
  return { loader, copies };
}
