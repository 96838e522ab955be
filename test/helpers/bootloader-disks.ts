import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LoopDevice, sh } from './loop.ts';

const MTOOLS = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' };

/** Debian 12's shim BOOTX64.CSV, byte for byte (UCS-2 LE, no BOM). */
export const DEBIAN_BOOT_CSV = Buffer.from('shimx64.efi,debian,,This is the boot entry for debian\n', 'utf16le');

/** Loader files with recognisable random content, as a Debian ESP holds them. */
export function debianLoaders(): Record<string, Buffer> {
  return {
    'EFI/debian/shimx64.efi': randomBytes(4096),
    'EFI/debian/grubx64.efi': randomBytes(8192),
    'EFI/debian/mmx64.efi': randomBytes(2048),
    'EFI/debian/fbx64.efi': randomBytes(1024),
    'EFI/debian/BOOTX64.CSV': DEBIAN_BOOT_CSV,
    'EFI/debian/grub.cfg': Buffer.from("search.fs_uuid 0000 root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"),
  };
}

/** Files written into a directory tree (paths relative to it). */
export function writeTree(root: string, files: Record<string, Buffer | string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

/** A FAT filesystem's files, written with mtools (the kernel here has no vfat). */
export function fillEsp(partition: string, files: Record<string, Buffer>): void {
  const dir = mkdtempSync(join(tmpdir(), 'ina-espfill-'));
  try {
    const made = new Set<string>();
    for (const [path, content] of Object.entries(files)) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join('/');
        if (made.has(d)) continue;
        execFileSync('mmd', ['-i', partition, `::/${d}`], { env: MTOOLS, stdio: 'ignore' });
        made.add(d);
      }
      const local = join(dir, 'f');
      writeFileSync(local, content);
      execFileSync('mcopy', ['-i', partition, '-o', local, `::/${path}`], { env: MTOOLS, stdio: 'ignore' });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every file on the ESP (`EFI/BOOT/BOOTX64.EFI`...), directories left out. */
export function espFiles(partition: string): string[] {
  try {
    return execFileSync('mdir', ['-i', partition, '-/', '-b', '-a', '::/'], { env: MTOOLS, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l.startsWith('::/') && !l.endsWith('/'))
      .map((l) => l.slice(3));
  } catch {
    return []; // mdir exits 1 on an empty root
  }
}

export function espRead(partition: string, path: string): Buffer {
  return execFileSync('mtype', ['-i', partition, `::/${path}`], { env: MTOOLS, maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Runs `fn` with `partition` mounted read-only on a private directory. */
export function withMounted<T>(partition: string, fn: (root: string) => T, opts: { rw?: boolean } = {}): T {
  const dir = mkdtempSync(join(tmpdir(), 'ina-inspect-'));
  execFileSync('mount', ['-o', opts.rw ? 'rw' : 'ro', partition, dir]);
  try {
    return fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  }
}

export const blkid = (device: string, tag: string) => sh('blkid', ['-p', '-o', 'value', '-s', tag, device]).trim();

export interface TargetDisk {
  loop: LoopDevice;
  disk: string;
  esp?: string;
  root: string;
  /** The vfat volume id, as `blkid -p` prints it (what Ironic gets as efi system partition uuid). */
  espUuid?: string;
  espPartUuid?: string;
  rootUuid: string;
  destroy(): Promise<void>;
}

export interface TargetDiskOptions {
  table?: 'gpt' | 'dos';
  /** GPT type code of the ESP (EF00; 0700 makes one found only by its UUID), or none. */
  espType?: 'EF00' | '0700' | null;
  espFiles?: Record<string, Buffer>;
  /** Files of the root filesystem (ext4, made with mkfs.ext4 -d). */
  rootFiles?: Record<string, Buffer | string>;
  /** Called with the root tree's directory before mkfs, for symlinks, FIFOs, busybox... */
  prepareRoot?: (dir: string) => void;
  /** msdos only: a first partition of this MBR type (e.g. 41 for PReP). */
  firstPartitionType?: string;
}

/**
 * A partition-image deploy as the lead's layout leaves it (spec §9.6): GPT, ESP first
 * (`mkfs.vfat -n efi-part`), root last; or msdos with root last. On a loop device this test
 * creates; partitions registered with partx.
 */
export async function makeTargetDisk(opts: TargetDiskOptions = {}): Promise<TargetDisk> {
  const loop = await LoopDevice.create(256 * 2 ** 20);
  try {
    return build(loop, opts);
  } catch (err) {
    await loop.destroy();
    throw err;
  }
}

/**
 * partx -a fails when the kernel still lists a partition of an earlier user of the same loop
 * number (one detached without partx -d); -u first brings that list in line.
 */
function registerPartitions(loop: LoopDevice, count: number): void {
  for (const args of [['-u'], ['-a']]) {
    try {
      execFileSync('partx', [...args, loop.path], { stdio: 'ignore' });
    } catch {
      // "nothing to do" is an error for partx; the check below decides
    }
  }
  for (let n = 1; n <= count; n++) {
    if (!existsSync(`/sys/class/block/${loop.path.slice(5)}/${loop.path.slice(5)}p${n}`)) throw new Error(`partition ${n} of ${loop.path} did not appear`);
  }
}

function build(loop: LoopDevice, opts: TargetDiskOptions): TargetDisk {
  const table = opts.table ?? 'gpt';
  const espType = opts.espType === undefined ? (table === 'gpt' ? 'EF00' : null) : opts.espType;
  let rootNumber: number;
  let espNumber: number | undefined;
  if (table === 'gpt') {
    const args = espType ? ['-n', '1:2048:+64M', '-t', `1:${espType}`, '-n', '2:0:0', '-t', '2:8300'] : ['-n', '1:2048:+1M', '-t', '1:EF02', '-n', '2:0:0', '-t', '2:8300'];
    sh('sgdisk', [...args, loop.path]);
    espNumber = espType ? 1 : undefined;
    rootNumber = 2;
  } else {
    const first = opts.firstPartitionType ? `start=2048, size=16384, type=${opts.firstPartitionType}\n` : '';
    sh('sfdisk', ['--quiet', loop.path], `label: dos\n${first}${first ? '' : 'start=2048, '}type=83, bootable\n`);
    rootNumber = first ? 2 : 1;
  }
  registerPartitions(loop, rootNumber);
  const root = loop.partition(rootNumber);
  const tree = mkdtempSync(join(tmpdir(), 'ina-roottree-'));
  try {
    writeTree(tree, opts.rootFiles ?? {});
    opts.prepareRoot?.(tree);
    sh('mkfs.ext4', ['-q', '-F', '-d', tree, root]);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
  const out: TargetDisk = {
    loop,
    disk: loop.path,
    root,
    rootUuid: blkid(root, 'UUID'),
    destroy: () => loop.destroy(),
  };
  if (espNumber !== undefined) {
    const esp = loop.partition(espNumber);
    sh('mkfs.vfat', ['-n', 'efi-part', esp]);
    if (opts.espFiles) fillEsp(esp, opts.espFiles);
    Object.assign(out, { esp, espUuid: blkid(esp, 'UUID'), espPartUuid: blkid(esp, 'PART_ENTRY_UUID') });
  }
  return out;
}

/** A root tree that can run a chroot: busybox as /bin/sh and the applets the grub doubles use. */
export function installBusybox(dir: string): void {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin/busybox'), readFileSync('/bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'echo', 'env', 'grep', 'mkdir', 'mount', 'umount', 'dd', 'printf', 'basename', 'dirname', 'readlink', 'sleep', 'sort', 'test', 'ls']) {
    symlinkSync('busybox', join(dir, 'bin', applet));
  }
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'var/log', 'boot/grub', 'etc', 'usr/sbin']) mkdirSync(join(dir, d), { recursive: true });
}

const GRUB_DOUBLES = join(import.meta.dirname, '../fixtures/grub');

/** The grub-install and grub-mkconfig doubles in /usr/sbin of a root tree (as grub or grub2). */
export function installGrubDoubles(dir: string, name: 'grub' | 'grub2' = 'grub'): void {
  for (const tool of ['install', 'mkconfig']) {
    const target = join(dir, 'usr/sbin', `${name}-${tool}`);
    writeFileSync(target, readFileSync(join(GRUB_DOUBLES, `grub-${tool}`)));
    chmodSync(target, 0o755);
  }
}
