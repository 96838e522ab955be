import { mkdtemp, mkdir, readFile, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseDepends, parseStanzas } from '../../image-build/apt.ts';
import { parseCompression } from '../../image-build/compress.ts';
import { modeOf, writeCpio } from '../../image-build/cpio.ts';
import { parseNeeded } from '../../image-build/elf.ts';
import { BuildError } from '../../image-build/errors.ts';
import { kernelRelease, parseShowDepends } from '../../image-build/kernel.ts';
import { checkArchitecture } from '../../image-build/pipeline.ts';

describe('Debian package metadata', () => {
  test('Depends: alternatives, version constraints and architecture qualifiers', () => {
    expect(parseDepends('libc6 (>= 2.34), crun | runc (>= 1.0.0~rc92~), python3:any, zlib1g')).toEqual([
      ['libc6'],
      ['crun', 'runc'],
      ['python3'],
      ['zlib1g'],
    ]);
  });

  test('apt-cache show stanzas, with Pre-Depends and folded lines', () => {
    const text = [
      'Package: qemu-utils',
      'Version: 1:7.2+dfsg-7',
      'Pre-Depends: libc6 (>= 2.34)',
      'Depends: libaio1 (>= 0.3.93), libglib2.0-0,',
      ' zlib1g (>= 1:1.1.4)',
      'Description: QEMU utilities',
      '',
      'Package: libaio1',
      'Version: 0.3.113-4',
      '',
    ].join('\n');
    expect(parseStanzas(text)).toEqual([
      { name: 'qemu-utils', version: '1:7.2+dfsg-7', depends: [['libc6'], ['libaio1'], ['libglib2.0-0'], ['zlib1g']] },
      { name: 'libaio1', version: '0.3.113-4', depends: [] },
    ]);
  });
});

describe('kernel modules and shared libraries', () => {
  test('modprobe --show-depends: files in load order, or builtin', () => {
    const out = 'insmod /k/lib/modules/6.1/kernel/drivers/virtio/virtio.ko \ninsmod /k/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko \n';
    expect(parseShowDepends(out)).toEqual(['/k/lib/modules/6.1/kernel/drivers/virtio/virtio.ko', '/k/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko']);
    expect(parseShowDepends('builtin tpm_tis\n')).toBe('builtin');
    expect(kernelRelease('linux-image-6.1.0-56-amd64')).toBe('6.1.0-56-amd64');
  });

  test('readelf -d of several files: NEEDED per file', () => {
    const out = [
      '',
      'File: /r/usr/bin/xz',
      '',
      'Dynamic section at offset 0x1 contains 2 entries:',
      ' 0x0000000000000001 (NEEDED)             Shared library: [liblzma.so.5]',
      ' 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]',
      '',
      'File: /r/bin/busybox',
      '',
      'There is no dynamic section in this file.',
    ].join('\n');
    expect(parseNeeded(out)).toEqual(new Map([['/r/usr/bin/xz', ['liblzma.so.5', 'libc.so.6']], ['/r/bin/busybox', []]]));
  });
});

describe('build options', () => {
  test('compression methods and levels', () => {
    expect(parseCompression('zstd', undefined)).toEqual({ method: 'zstd', level: 19 });
    expect(parseCompression('xz', '9')).toEqual({ method: 'xz', level: 9 });
    expect(parseCompression('none', undefined)).toEqual({ method: 'none' });
    expect(() => parseCompression('bzip2', undefined)).toThrow(/use one of zstd, xz, gzip, lz4, none/);
    expect(() => parseCompression('zstd', '22')).toThrow(/zstd takes 1-19/);
  });

  test('an unsupported architecture is refused with what is supported', () => {
    expect(() => checkArchitecture('amd64')).not.toThrow();
    expect(() => checkArchitecture('arm64')).toThrow(BuildError);
    expect(() => checkArchitecture('arm64')).toThrow(/unsupported architecture: arm64\. image-build builds amd64 \(x86_64\) ramdisks only/);
  });
});

/** Reads a newc archive back: names, modes, mtimes, owners and contents. */
function readCpio(buf: Buffer): { name: string; mode: number; uid: number; gid: number; mtime: number; ino: number; data: Buffer }[] {
  const entries = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    const h = buf.subarray(off, off + 110).toString('ascii');
    expect(h.slice(0, 6)).toBe('070701');
    const f = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const nameSize = f(11);
    const size = f(6);
    const name = buf.subarray(off + 110, off + 110 + nameSize - 1).toString();
    const dataStart = align(off + 110 + nameSize);
    const data = buf.subarray(dataStart, dataStart + size);
    off = align(dataStart + size);
    if (name === 'TRAILER!!!') break;
    entries.push({ name, ino: f(0), mode: f(1), uid: f(2), gid: f(3), mtime: f(5), data });
  }
  expect(off).toBe(buf.length);
  return entries;
}

describe('the initramfs archive (cpio newc)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-cpio-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function tree(root: string, umaskMode: number): Promise<void> {
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    await writeFile(join(root, 'init'), '#!/bin/sh\n');
    await chmod(join(root, 'init'), 0o700 & umaskMode);
    await writeFile(join(root, 'usr/bin/B'), 'b');
    await writeFile(join(root, 'usr/bin/a'), 'aa');
    await chmod(join(root, 'usr/bin/a'), 0o664 & umaskMode);
    await symlink('/usr/bin/a', join(root, 'usr/bin/link'));
  }

  test('sorted names, root owner, one mtime, normalized modes, symlinks as symlinks', async () => {
    const root = join(dir, 'a');
    await tree(root, 0o777);
    await writeCpio(root, join(dir, 'a.cpio'), { mtime: 1234, modes: new Map([['tmp', 0o1777]]) });
    const entries = readCpio(await readFile(join(dir, 'a.cpio')));
    expect(entries.map((e) => e.name)).toEqual(['init', 'tmp', 'usr', 'usr/bin', 'usr/bin/B', 'usr/bin/a', 'usr/bin/link']);
    expect(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === 1234)).toBe(true);
    expect(entries.map((e) => e.ino)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const mode = (name: string) => entries.find((e) => e.name === name)!.mode.toString(8);
    expect(mode('init')).toBe('100755');
    expect(mode('tmp')).toBe('41777');
    expect(mode('usr/bin/a')).toBe('100644');
    expect(mode('usr/bin/link')).toBe('120777');
    expect(entries.find((e) => e.name === 'usr/bin/link')!.data.toString()).toBe('/usr/bin/a');
    expect(entries.find((e) => e.name === 'usr/bin/a')!.data.toString()).toBe('aa');
  });

  test('the same tree gives the same bytes whatever the umask and write order were', async () => {
    const one = join(dir, 'one');
    const two = join(dir, 'two');
    await tree(one, 0o777);
    await tree(two, 0o755);
    await writeCpio(one, join(dir, 'one.cpio'), { mtime: 0, modes: new Map() });
    await writeCpio(two, join(dir, 'two.cpio'), { mtime: 0, modes: new Map() });
    expect((await readFile(join(dir, 'one.cpio'))).equals(await readFile(join(dir, 'two.cpio')))).toBe(true);
    expect(modeOf('x', 'file', 0o100700, new Map()).toString(8)).toBe('100755');
  });
});
