import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A loop device over a sparse file that this test creates and removes: the only kind of
 * disk tests may write. Partitions appear only after `partx -a`, because this kernel has
 * no partition-table parser of its own.
 */
export class LoopDevice {
  readonly path: string;
  readonly file: string;
  private readonly dir: string;

  private constructor(path: string, file: string, dir: string) {
    this.path = path;
    this.file = file;
    this.dir = dir;
  }

  static async create(sizeBytes: number, opts: { sectorSize?: 512 | 4096; readOnly?: boolean } = {}): Promise<LoopDevice> {
    const dir = mkdtempSync(join(tmpdir(), 'ina-loop-'));
    const file = join(dir, 'disk.img');
    const fh = await open(file, 'w');
    await fh.truncate(sizeBytes);
    await fh.close();
    const args = ['--find', '--show'];
    if (opts.sectorSize) args.push('--sector-size', String(opts.sectorSize));
    if (opts.readOnly) args.push('--read-only');
    const path = execFileSync('losetup', [...args, file], { encoding: 'utf8' }).trim();
    return new LoopDevice(path, file, dir);
  }

  /** `/dev/loopNpK` */
  partition(n: number): string {
    return `${this.path}p${n}`;
  }

  /** Register the partition table's partitions with the kernel (BLKPG via partx). */
  scanPartitions(): void {
    try {
      execFileSync('partx', ['-a', this.path], { stdio: 'ignore' });
    } catch {
      // -a fails when some partitions are registered already (a table re-read raced it);
      // -u brings those in line with the table, and fails if the table cannot be read.
      execFileSync('partx', ['-u', this.path], { stdio: 'ignore' });
    }
  }

  async destroy(): Promise<void> {
    try {
      execFileSync('partx', ['-d', this.path], { stdio: 'ignore' });
    } catch {
      // no partitions registered
    }
    try {
      execFileSync('losetup', ['-d', this.path], { stdio: 'ignore' });
    } catch {
      // already detached (a test may detach it on purpose)
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sh(file: string, args: string[], input?: string): string {
  return execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}
