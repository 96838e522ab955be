import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandExecution, errorMessage } from '../errors.ts';
import type { RunCommand } from '../run.ts';

/** A umount that does not return in this time is reported, not waited for forever. */
const UMOUNT_TIMEOUT_SECONDS = 120;
/** IPA unmounts with attempts=3, delay_on_retry: a process that just exited may still hold the mount. */
const UMOUNT_ATTEMPTS = 3;

/** /proc/self/mountinfo escapes spaces and friends as octal. */
function unescape(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Mount points at or below `dir`, in mount order (so reversed, children come before their parents). */
export async function mountsBelow(dir: string, procRoot = '/proc'): Promise<string[]> {
  const info = await readFile(join(procRoot, 'self/mountinfo'), 'utf8');
  const points: string[] = [];
  for (const line of info.split('\n')) {
    const point = line.split(' ')[4];
    if (point === undefined) continue;
    const path = unescape(point);
    if (path === dir || path.startsWith(`${dir}/`)) points.push(path);
  }
  return points;
}

/**
 * A private directory with a filesystem of the target mounted on it, and whatever gets
 * mounted below it (bind mounts for a chroot, or anything tenant code mounted from inside
 * one). release() unmounts all of it, deepest first, read from the kernel's mount table
 * rather than from what this code remembers mounting, and removes the directory.
 */
export class TargetMount {
  readonly dir: string;
  private readonly run: RunCommand;

  private constructor(dir: string, run: RunCommand) {
    this.dir = dir;
    this.run = run;
  }

  /**
   * Mounts `partition` (filesystem `fstype`, as blkid probed it) with `options`. nosuid and
   * nodev always: nothing on the target gains privileges or opens devices through this mount.
   */
  static async mount(run: RunCommand, partition: string, fstype: string, options: readonly string[], what: string): Promise<TargetMount> {
    const dir = await mkdtemp(join(tmpdir(), 'ina-target-'));
    try {
      await run('mount', ['-t', fstype, '-o', ['nosuid', 'nodev', ...options].join(','), partition, dir]);
    } catch (err) {
      await rmdir(dir).catch(() => undefined);
      throw commandExecution(`cannot mount ${partition} (${fstype}) to ${what}: ${errorMessage(err)}`);
    }
    return new TargetMount(dir, run);
  }

  /**
   * A directory of the mounted target to mount onto: it must be a real directory (a symlink
   * in the image would resolve against the ramdisk's own tree, and mount follows it: an image
   * with /dev -> /etc would get the ramdisk's /etc bound over). Created when missing, as IPA's
   * `mkdir -p` does.
   */
  async mountPoint(relative: string): Promise<string> {
    let path = this.dir;
    const parts = relative.split('/').filter((p) => p !== '');
    for (const part of parts) {
      path = join(path, part);
      const st = await lstat(path).catch(() => undefined);
      if (!st) await mkdir(path, { mode: 0o755 });
      else if (!st.isDirectory()) throw commandExecution(`/${parts.join('/')} in the image is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; refusing to mount over it`);
    }
    return path;
  }

  /**
   * Unmounts everything at or below the directory, then removes it. Processes still running
   * with their root inside it (started by tenant code from a chroot) are killed first: they
   * would keep it busy. Throws after trying everything if something stays mounted.
   */
  async release(): Promise<void> {
    await killProcessesRootedIn(this.dir);
    const failures: string[] = [];
    for (const point of (await mountsBelow(this.dir)).reverse()) {
      let last: unknown;
      for (let attempt = 1; attempt <= UMOUNT_ATTEMPTS; attempt++) {
        try {
          // No signal: after a timeout or an abort, stopping umount would leave the target mounted.
          await this.run('umount', [point], { signal: undefined, timeoutSeconds: UMOUNT_TIMEOUT_SECONDS });
          last = undefined;
          break;
        } catch (err) {
          last = err;
          if (attempt < UMOUNT_ATTEMPTS) await sleep(1000);
        }
      }
      if (last !== undefined) failures.push(`${point}: ${errorMessage(last)}`);
    }
    const left = await mountsBelow(this.dir);
    if (left.length > 0 || failures.length > 0) {
      throw commandExecution(`cannot unmount ${left.join(', ') || this.dir}${failures.length > 0 ? ` (${failures.join('; ')})` : ''}`);
    }
    await rmdir(this.dir);
  }
}

/** SIGKILL every process whose root directory is `dir` or below it (the only ones that can be are ours). */
async function killProcessesRootedIn(dir: string, procRoot = '/proc'): Promise<void> {
  const pids = (await readdir(procRoot)).filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
  let killed = 0;
  for (const pid of pids) {
    const root = await readlink(join(procRoot, pid, 'root')).catch(() => undefined);
    if (root === dir || root?.startsWith(`${dir}/`)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      } catch {
        // gone already
      }
    }
  }
  // Give the kernel a moment to tear them down before umount (the retries cover a slow one).
  if (killed > 0) await sleep(100);
}
