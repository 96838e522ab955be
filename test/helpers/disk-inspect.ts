import { execFileSync } from 'node:child_process';

export interface SfdiskPartition { node: string; start: number; size: number; type: string; bootable?: boolean; name?: string; uuid?: string }

/** The partition table of a device or image file as sfdisk reads it (sizes in 512-byte sectors). */
export function sfdiskTable(device: string): { label: string; partitions: SfdiskPartition[] } {
  return (JSON.parse(execFileSync('sfdisk', ['--json', device], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: SfdiskPartition[] } }).partitiontable;
}

/** What `blkid -p` reads from the device itself (no cache, no udev). */
export function blkidProbe(device: string): Record<string, string> {
  const out = execFileSync('blkid', ['-p', '-o', 'export', device], { encoding: 'utf8' });
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}
