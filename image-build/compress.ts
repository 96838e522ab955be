import { BuildError } from './errors.ts';
import { exec } from './exec.ts';

/** Formats the Debian 12 kernel unpacks (CONFIG_RD_ZSTD/XZ/GZIP/LZ4 = y). */
export const METHODS = ['zstd', 'xz', 'gzip', 'lz4', 'none'] as const;
export type CompressionMethod = (typeof METHODS)[number];

export interface Compression {
  method: CompressionMethod;
  level?: number;
}

const LEVELS: Record<CompressionMethod, [min: number, max: number, dflt: number | undefined]> = {
  zstd: [1, 19, 19],
  xz: [0, 9, 6],
  gzip: [1, 9, 9],
  lz4: [1, 12, 9],
  none: [0, 0, undefined],
};

export function parseCompression(method: string, level: string | undefined): Compression {
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new BuildError(`--compress ${method}: use one of ${METHODS.join(', ')}`);
  }
  const m = method as CompressionMethod;
  const [min, max, dflt] = LEVELS[m];
  if (level === undefined) return dflt === undefined ? { method: m } : { method: m, level: dflt };
  const n = Number(level);
  if (m === 'none' || !Number.isInteger(n) || n < min || n > max) {
    throw new BuildError(`--compress-level ${level}: ${m === 'none' ? 'no level without compression' : `${m} takes ${min}-${max}`}`);
  }
  return { method: m, level: n };
}

/**
 * Compresses the cpio archive with flags that make the output depend only on the input:
 * a fixed number of zstd workers, single-threaded xz with the CRC32 check the kernel's
 * decoder wants, gzip without a name or time stamp, lz4's legacy frames (the only ones
 * the kernel reads). zstd decompresses about 5x faster than xz under QEMU's TCG
 * (spec/ramdisk.md), which is why it is the default.
 */
export async function compress(input: string, output: string, c: Compression): Promise<void> {
  const level = c.level === undefined ? [] : [`-${c.level}`];
  switch (c.method) {
    case 'zstd':
      await exec('zstd', ['-q', '-f', '-T2', ...level, '-o', output, input], { timeoutSeconds: 1800 });
      return;
    case 'xz':
      await toFile(output, ['xz', '-T1', '--check=crc32', ...level, '-c', input]);
      return;
    case 'gzip':
      await toFile(output, ['gzip', '-n', ...level, '-c', input]);
      return;
    case 'lz4':
      await exec('lz4', ['-q', '-f', '-l', ...level, input, output], { timeoutSeconds: 1800 });
      return;
    case 'none':
      await exec('cp', [input, output]);
      return;
  }
}

/** Runs `command` with its stdout going to `output` (xz and gzip write to stdout only). */
async function toFile(output: string, command: string[]): Promise<void> {
  await exec('sh', ['-c', 'out=$1; shift; exec "$@" > "$out"', 'sh', output, ...command], { timeoutSeconds: 1800 });
}
