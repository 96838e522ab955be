import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { BuildError } from './errors.ts';
import { ExecError, exec } from './exec.ts';

/**
 * The kernel ABI package behind Debian's `linux-image-amd64` meta-package (for example
 * `linux-image-6.1.0-56-amd64`): the newest Debian 12 kernel the apt lists know.
 */
export async function resolveKernelPackage(meta = 'linux-image-amd64'): Promise<string> {
  let out: string;
  try {
    out = await exec('apt-cache', ['show', '--no-all-versions', meta]);
  } catch (err) {
    if (err instanceof ExecError) throw new BuildError(`Debian package ${meta} not found (run \`apt-get update\` first)`);
    throw err;
  }
  const depends = /^Depends: (.*)$/m.exec(out)?.[1] ?? '';
  const abi = depends
    .split(',')
    .map((d) => d.trim().split(/\s/)[0]!)
    .find((d) => /^linux-image-\d/.test(d));
  if (!abi) throw new BuildError(`cannot find the kernel package ${meta} depends on (Depends: ${depends})`);
  return abi;
}

/** `linux-image-6.1.0-56-amd64` -> `6.1.0-56-amd64` */
export function kernelRelease(kernelPackage: string): string {
  return kernelPackage.replace(/^linux-image-/, '');
}

/**
 * `modprobe --show-depends` output -> the .ko files to load, in order, or `builtin` when
 * the module is part of the kernel image.
 */
export function parseShowDepends(output: string): string[] | 'builtin' {
  const files: string[] = [];
  for (const line of output.split('\n')) {
    const [verb, arg] = line.trim().split(/\s+/);
    if (verb === 'builtin') return files.length === 0 ? 'builtin' : files;
    if (verb === 'insmod' && arg) files.push(arg);
  }
  return files;
}

/**
 * Copies the listed modules and their dependencies from the unpacked kernel package into the
 * ramdisk and runs depmod there, so busybox modprobe finds dependencies and aliases without
 * udev; writes /etc/modules.boot, the ones rcS loads whatever the hardware. Returns the
 * modules' paths in the ramdisk.
 */
export async function installModules(
  kernelTree: string,
  release: string,
  rootfs: string,
  modules: readonly string[],
  bootModules: readonly string[],
): Promise<string[]> {
  const moduleDir = join('lib/modules', release);
  await exec('depmod', ['-b', kernelTree, release]);
  const files = new Set<string>();
  const loaded: string[] = [];
  for (const module of modules) {
    let out: string;
    try {
      out = await exec('modprobe', ['-d', kernelTree, '-S', release, '--show-depends', module]);
    } catch (err) {
      if (err instanceof ExecError) throw new BuildError(`kernel module ${module} not found in linux-image-${release}`);
      throw err;
    }
    const deps = parseShowDepends(out);
    if (deps === 'builtin') continue;
    for (const ko of deps) files.add(relative(kernelTree, ko));
    loaded.push(module);
  }
  for (const rel of [...files].sort()) {
    await mkdir(dirname(join(rootfs, rel)), { recursive: true });
    await copyFile(join(kernelTree, rel), join(rootfs, rel));
  }
  for (const meta of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    await copyFile(join(kernelTree, moduleDir, meta), join(rootfs, moduleDir, meta));
  }
  await exec('depmod', ['-b', rootfs, release]);
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  const boot = bootModules.filter((m) => loaded.includes(m));
  await writeFile(join(rootfs, 'etc/modules.boot'), `${boot.join('\n')}\n`);
  return [...files].sort();
}

/** The kernel image of the unpacked package. */
export async function kernelImage(kernelTree: string, release: string): Promise<string> {
  const name = `vmlinuz-${release}`;
  const boot = await readdir(join(kernelTree, 'boot')).catch(() => [] as string[]);
  if (!boot.includes(name)) throw new BuildError(`the kernel package has no boot/${name}`);
  return join(kernelTree, 'boot', name);
}
