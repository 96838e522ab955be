import { existsSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCompression } from '../../../image-build/compress.ts';
import { buildRamdisk, type BuildOptions, type BuildResult } from '../../../image-build/pipeline.ts';

const CACHE = fileURLToPath(new URL('../../../node_modules/.cache/ironic-node-agent-image-build', import.meta.url));

/** Whether image-build can run here: Debian's apt and the kernel module tools. */
export function canBuildRamdisk(): boolean {
  return existsSync('/usr/bin/apt-get') && existsSync('/usr/bin/dpkg-deb') && existsSync('/usr/sbin/depmod') && existsSync('/usr/bin/zstd');
}

export type Variant = Partial<Pick<BuildOptions, 'bootc' | 'ssh' | 'python' | 'authorizedKeys' | 'plugins'>>;

/**
 * Builds a ramdisk for a test into `output`, with the .deb cache every build shares.
 * The tests compress with zstd -3 (about 1 s instead of over a minute at the default
 * level 19; the kernel unpacks every zstd level at the same speed, spec/ramdisk.md).
 */
export async function buildTestRamdisk(output: string, variant: Variant = {}): Promise<BuildResult> {
  const result = await buildRamdisk({
    output,
    cache: CACHE,
    arch: 'amd64',
    bootc: variant.bootc ?? true,
    ssh: variant.ssh ?? false,
    python: variant.python ?? false,
    authorizedKeys: variant.authorizedKeys,
    plugins: variant.plugins,
    extraModules: [],
    compression: parseCompression('zstd', process.env.INA_TEST_RAMDISK_ZSTD_LEVEL ?? '3'),
    sourceDateEpoch: 0,
    keepWork: false,
    progress: () => {},
  });
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  process.stderr.write(
    `ramdisk built in ${result.seconds.toFixed(1)} s (${JSON.stringify(variant)}): vmlinuz ${mb(result.kernel.bytes)}, ` +
      `initramfs ${mb(result.initramfs.bytes)} (${mb(result.cpioBytes)} uncompressed)\n`,
  );
  return result;
}

/**
 * One ramdisk build for every scenario of a test file, made on first use in a directory of
 * its own; the file's afterAll calls remove().
 */
export function sharedTestRamdisk(prefix: string, variant: Variant = {}): { get: () => Promise<BuildResult>; remove: () => Promise<void> } {
  let built: { dir: string; image: Promise<BuildResult> } | undefined;
  return {
    get: () => {
      if (!built) {
        const dir = mkdtempSync(join(tmpdir(), prefix));
        built = { dir, image: buildTestRamdisk(dir, variant) };
      }
      return built.image;
    },
    remove: async () => {
      if (built) await rm(built.dir, { recursive: true, force: true });
    },
  };
}
