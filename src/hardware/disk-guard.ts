import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AgentError } from '../errors.ts';

/** The error every writer, wiper and eraser raises instead of touching a device. */
export function unsafeDevice(device: string, reason: string): AgentError {
  return new AgentError('UnsafeDeviceError', 409, 'Refusing to touch block device', `${device}: ${reason}`);
}

export interface DiskGuardOptions {
  /** When non-empty, only these devices (after resolving symlinks) may be touched. */
  allowDevices: readonly string[];
  /** Roots for tests with recorded trees; the real ones by default. */
  sysRoot?: string;
  procRoot?: string;
}

interface BlockNode {
  kname: string;
  devno: string;
}

/** What DiskGuard.check accepts besides the device (see there). */
export interface GuardCheckOptions {
  allowedVia?: readonly string[];
  heldBy?: readonly string[];
}

/**
 * The one gate in front of every destructive disk operation. A device passes only if it is
 * a block device, is on the allowlist when one is configured, and neither it nor any of its
 * partitions has a mounted filesystem, active swap, or holders (LVM, md, dm, bcache...).
 * The checks read the kernel's own view (sysfs, /proc) at the moment of the call, so a disk
 * that changed since it was listed is judged as it is now.
 */
export class DiskGuard {
  private readonly allow: readonly string[];
  private readonly sys: string;
  private readonly proc: string;

  constructor(opts: DiskGuardOptions) {
    this.allow = opts.allowDevices;
    this.sys = opts.sysRoot ?? '/sys';
    this.proc = opts.procRoot ?? '/proc';
  }

  get allowlist(): readonly string[] {
    return this.allow;
  }

  /**
   * Resolves `device` and throws UnsafeDeviceError unless it may be written. Returns the
   * resolved path. `allowedVia`: devices whose allowance stands for this one when it is not on
   * the allowlist itself (an md array is as allowed as all its member disks). `heldBy`: holders
   * the caller expects and writes beside, never over (the root md array on a disk that gets
   * an ESP partition in its free space); any other holder still refuses.
   */
  async check(device: string, opts: GuardCheckOptions = {}): Promise<string> {
    let resolved: string;
    try {
      resolved = await realpath(device);
      if (!(await stat(resolved)).isBlockDevice()) throw unsafeDevice(device, 'not a block device');
    } catch (err) {
      if (err instanceof AgentError) throw err;
      throw unsafeDevice(device, `cannot open it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    if (this.allow.length > 0 && !(await this.isAllowed(resolved)) && !(await this.allowedThrough(opts.allowedVia ?? []))) {
      throw unsafeDevice(device, `not in the device allowlist (${this.allow.join(', ')})`);
    }
    const nodes = await this.deviceAndPartitions(resolved);
    const paths = new Set(nodes.map((n) => `/dev/${n.kname}`));
    paths.add(resolved);
    const devnos = new Set(nodes.map((n) => n.devno));

    const mount = await this.findMount(devnos, paths);
    if (mount) throw unsafeDevice(device, `has a mounted filesystem (${mount})`);
    const swap = await this.findSwap(paths);
    if (swap) throw unsafeDevice(device, `is in use as swap (${swap})`);
    const expected = new Set((opts.heldBy ?? []).map((h) => basename(h)));
    for (const node of nodes) {
      const holders = (await this.listDir(join(this.sys, 'class/block', node.kname, 'holders'))).filter((h) => !expected.has(h));
      if (holders.length > 0) {
        throw unsafeDevice(device, `/dev/${node.kname} is held by ${holders.map((h) => `/dev/${h}`).join(', ')}`);
      }
    }
    return resolved;
  }

  /** True when no allowlist is configured or `device` resolves to an allowlisted device. */
  async allowed(device: string): Promise<boolean> {
    if (this.allow.length === 0) return true;
    return this.isAllowed(await realpath(device).catch(() => device));
  }

  private async allowedThrough(devices: readonly string[]): Promise<boolean> {
    if (devices.length === 0) return false;
    for (const d of devices) if (!(await this.isAllowed(await realpath(d).catch(() => d)))) return false;
    return true;
  }

  /** An allowlisted disk allows its partitions too (the metadata erase wipes them one by one). */
  private async isAllowed(resolved: string): Promise<boolean> {
    const parent = await this.parentDisk(resolved);
    for (const entry of this.allow) {
      const target = await realpath(entry).catch(() => entry);
      if (target === resolved || (parent !== undefined && target === parent)) return true;
    }
    return false;
  }

  private async parentDisk(resolved: string): Promise<string | undefined> {
    const classDir = join(this.sys, 'class/block', basename(resolved));
    if ((await this.readTrimmed(join(classDir, 'partition'))) === undefined) return undefined;
    const real = await realpath(classDir).catch(() => undefined);
    return real ? `/dev/${basename(join(real, '..'))}` : undefined;
  }

  private async deviceAndPartitions(resolved: string): Promise<BlockNode[]> {
    const kname = basename(resolved);
    const classDir = join(this.sys, 'class/block', kname);
    const devno = await this.readTrimmed(join(classDir, 'dev'));
    if (devno === undefined) throw unsafeDevice(resolved, `the kernel does not list ${kname} in sysfs`);
    const nodes: BlockNode[] = [{ kname, devno }];
    for (const entry of await this.listDir(classDir)) {
      if (!entry.startsWith(kname)) continue;
      const partDevno = await this.readTrimmed(join(classDir, entry, 'dev'));
      if (partDevno !== undefined && (await this.readTrimmed(join(classDir, entry, 'partition'))) !== undefined) {
        nodes.push({ kname: entry, devno: partDevno });
      }
    }
    return nodes;
  }

  private async findMount(devnos: Set<string>, paths: Set<string>): Promise<string | undefined> {
    const mountinfo = (await this.readTrimmed(join(this.proc, 'self/mountinfo'))) ?? '';
    for (const line of mountinfo.split('\n')) {
      // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
      const fields = line.split(' ');
      const dash = fields.indexOf('-');
      const devno = fields[2];
      const mountPoint = fields[4];
      const source = dash > 0 ? fields[dash + 2] : undefined;
      if ((devno && devnos.has(devno)) || (source !== undefined && paths.has(source))) {
        return `${source ?? devno} on ${unescapeMountPath(mountPoint ?? '?')}`;
      }
    }
    return undefined;
  }

  private async findSwap(paths: Set<string>): Promise<string | undefined> {
    const swaps = (await this.readTrimmed(join(this.proc, 'swaps'))) ?? '';
    for (const line of swaps.split('\n').slice(1)) {
      const name = line.split(/\s+/)[0];
      if (!name) continue;
      const resolved = await realpath(unescapeMountPath(name)).catch(() => name);
      if (paths.has(resolved)) return resolved;
    }
    return undefined;
  }

  private async readTrimmed(path: string): Promise<string | undefined> {
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  private async listDir(path: string): Promise<string[]> {
    try {
      return await readdir(path);
    } catch {
      return [];
    }
  }
}

/** /proc/self/mountinfo and /proc/swaps escape spaces and friends as octal. */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}
