import { execFileSync, spawnSync } from 'node:child_process';
import { sfdiskTable } from '../../helpers/disk-inspect.ts';

/**
 * md arrays a VM built, read on the host from its disk images: this machine's kernel has no
 * md driver, but mdadm reads a superblock from any file, and RAID-1 keeps the array's bytes
 * unchanged on each member.
 */

/** A read-only loop device over `size` bytes of `file` from byte `offset`. */
export function readOnlyLoop(file: string, offset: number, size: number): { loop: string; release: () => void } {
  const loop = execFileSync('losetup', ['--find', '--show', '--read-only', '--offset', String(offset), '--sizelimit', String(size), file], { encoding: 'utf8' }).trim();
  return { loop, release: () => void spawnSync('losetup', ['-d', loop]) };
}

export interface MdMember {
  /** The array's name without the home host (`root` for `host:root`). */
  name: string;
  level: string;
  raidDevices: number;
  /** Where the member partition starts in the disk image, and the array's data in it (bytes). */
  start: number;
  dataStart: number;
  dataSize: number;
}

/** The md superblock of the partition at sectors `start`/`size` of `disk`; throws when it has none. */
export function examineMember(disk: string, partition: { start: number; size: number }): MdMember {
  const member = readOnlyLoop(disk, partition.start * 512, partition.size * 512);
  let out: string;
  try {
    out = execFileSync('mdadm', ['--examine', member.loop], { encoding: 'utf8' });
  } finally {
    member.release();
  }
  const field = (label: string) => {
    const value = new RegExp(`^\\s*${label} : (.+)$`, 'm').exec(out)?.[1]?.trim();
    if (value === undefined) throw new Error(`mdadm --examine of ${disk} at sector ${partition.start} printed no ${label}:\n${out}`);
    return value;
  };
  const dataOffset = Number(/^(\d+) sectors/.exec(field('Data Offset'))?.[1]);
  return {
    name: field('Name').split(' ')[0]!.replace(/^[^:]*:/, ''),
    level: field('Raid Level'),
    raidDevices: Number(field('Raid Devices')),
    start: partition.start * 512,
    dataStart: (partition.start + dataOffset) * 512,
    dataSize: (partition.size - dataOffset) * 512,
  };
}

/** The md member in every partition of a disk image, in table order. */
export function mdMembers(disk: string): MdMember[] {
  return sfdiskTable(disk).partitions.map((p) => examineMember(disk, p));
}

/**
 * A read-only loop device over the root array's data as the disk's first partition holds
 * it; throws unless that partition is a member of the array named `root`.
 */
export function rootArrayData(disk: string): { loop: string; release: () => void } {
  const member = examineMember(disk, sfdiskTable(disk).partitions[0]!);
  if (member.name !== 'root') throw new Error(`the first partition of ${disk} is a member of ${member.name}, not of root`);
  return readOnlyLoop(disk, member.dataStart, member.dataSize);
}
