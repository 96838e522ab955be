import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface TablePartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
}

/** The GPT as written on the disk (sfdisk reads it, not the kernel). */
export function partitionTable(device: string): TablePartition[] {
  const json = JSON.parse(execFileSync('sfdisk', ['--json', device], { encoding: 'utf8' })) as { partitiontable: { partitions?: TablePartition[] } };
  return json.partitiontable.partitions ?? [];
}

/** `blkid -p` of a partition node as key/value pairs (no udev here). */
export function probe(node: string): Record<string, string> {
  let out = '';
  try {
    out = execFileSync('blkid', ['-p', '-o', 'export', node], { encoding: 'utf8' });
  } catch {
    return {};
  }
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Re-registers the disk's partitions with the kernel (delete then add, spec/bootc.md §6). */
export function rescan(device: string): void {
  try {
    execFileSync('partx', ['-d', device], { stdio: 'ignore' });
  } catch {
    // none registered
  }
  execFileSync('partx', ['-a', device], { stdio: 'ignore' });
}

/** Mounts `node` read-only, runs `fn` on the mount point, unmounts. */
export function withMounted<T>(node: string, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'ina-bootc-mnt-'));
  execFileSync('mount', ['-o', 'ro', node, dir]);
  try {
    return fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What bootc installed: the deployment directory and the keys its tmpfiles.d line creates at first boot. */
export function installedDeployment(root: string): { deployment: string; authorizedKeys: string | undefined; kargs: string } {
  const base = join(root, 'ostree/deploy/default/deploy');
  const [dep] = readdirSync(base);
  if (!dep) throw new Error(`no deployment under ${base}`);
  const deployment = join(base, dep);
  let authorizedKeys: string | undefined;
  try {
    // `f~ /var/roothome/.ssh/authorized_keys 600 root root - <base64>` (spec/bootc.md §4.2 step 13)
    const line = readFileSync(join(deployment, 'etc/tmpfiles.d/bootc-root-ssh.conf'), 'utf8').trim();
    const f = line.split(' ');
    if (f[0] !== 'f~' || f[1] !== '/var/roothome/.ssh/authorized_keys' || f[2] !== '600') throw new Error(`unexpected tmpfiles line ${line}`);
    authorizedKeys = Buffer.from(f[6] ?? '', 'base64').toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const entry = readFileSync(join(root, 'boot/loader/entries/ostree-1.conf'), 'utf8');
  const kargs = /^options (.*)$/m.exec(entry)?.[1] ?? '';
  return { deployment, authorizedKeys, kargs };
}

/**
 * Whether any of `needles` occurs anywhere in the (sparse) disk image. Only the file's data
 * extents are read (`filefrag`): holes read as zeroes, and grepping 4 GiB of them takes
 * half a minute on this machine.
 */
export function fileContains(file: string, needles: string[]): boolean {
  execFileSync('sync', ['-f', file]);
  const out = execFileSync('filefrag', ['-e', '-b4096', file], { encoding: 'utf8' });
  const extents = [...out.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)].map((m) => [Number(m[1]) * 4096, (Number(m[2]) + 1) * 4096] as const);
  const fd = openSync(file, 'r');
  try {
    const overlap = Math.max(...needles.map((n) => Buffer.byteLength(n))) - 1;
    const chunk = Buffer.alloc(8 * 2 ** 20 + overlap);
    for (const [start, end] of extents) {
      for (let at = start; at < end; at += chunk.length - overlap) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, end + overlap - at), at);
        const view = chunk.subarray(0, n);
        if (needles.some((needle) => view.includes(needle))) return true;
        if (n < chunk.length) break;
      }
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/** A config drive as Ironic sends it: base64 of a gzipped ISO 9660 labelled config-2. */
export function makeConfigDrive(nodeUuid: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ina-cd-'));
  try {
    mkdirSync(join(dir, 'tree/openstack/latest'), { recursive: true });
    writeFileSync(join(dir, 'tree/openstack/latest/meta_data.json'), JSON.stringify({ uuid: nodeUuid }));
    execFileSync('genisoimage', ['-quiet', '-o', join(dir, 'cd.iso'), '-V', 'config-2', '-r', '-J', join(dir, 'tree')]);
    return gzipSync(readFileSync(join(dir, 'cd.iso'))).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Two valid SSH public keys (ed25519 blobs: the type name, then 32 key bytes). */
export function testKeys(): string {
  const blob = (seed: number) => {
    const type = Buffer.from('ssh-ed25519');
    const key = Buffer.alloc(32, seed);
    const len = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
    return Buffer.concat([len(type.length), type, len(key.length), key]).toString('base64');
  };
  return `ssh-ed25519 ${blob(1)} alice@example\nssh-ed25519 ${blob(2)} bob@example\n`;
}
