import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { type LoopDevice, sh } from './loop.ts';
import { MD_SUPERBLOCK_OFFSET, mdSuperblock12 } from './md-superblock.ts';

const MiB = 1024 * 1024;

/** Every signature `blkid -p` and `wipefs` find on the device, as `TYPE=x`, `PTTYPE=x`, `wipefs:x`. */
export function signatures(device: string): string[] {
  const found: string[] = [];
  try {
    found.push(...sh('blkid', ['-p', '-o', 'export', device]).split('\n').filter((l) => /^(TYPE|PTTYPE)=/.test(l)));
  } catch {
    // exit 2: nothing found
  }
  const wipefs = JSON.parse(sh('wipefs', ['--json', device]) || '{"signatures":[]}') as { signatures: { type: string }[] };
  found.push(...wipefs.signatures.map((s) => `wipefs:${s.type}`));
  return found;
}

export function readAt(device: string, offset: number, length: number): Buffer {
  const fd = openSync(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

export function writeAt(device: string, offset: number, data: Buffer): void {
  const fd = openSync(device, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

export const hasPvcreate = (() => {
  try {
    sh('pvcreate', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

/** GPT with an ext4, a vfat, a swap, an LVM PV (when lvm2 is there) and an md member partition. */
export function layoutEverything(disk: LoopDevice): void {
  sh('sfdisk', ['--quiet', disk.path], 'label: gpt\n,8M\n,8M\n,8M\n,8M\n,8M\n');
  disk.scanPartitions();
  sh('mkfs.ext4', ['-q', '-F', disk.partition(1)]);
  sh('mkfs.vfat', [disk.partition(2)]);
  sh('mkswap', [disk.partition(3)]);
  if (hasPvcreate) {
    sh('pvcreate', ['-ff', '-y', '--config', 'devices { obtain_device_list_from_udev=0 use_devicesfile=0 } activation { udev_sync=0 udev_rules=0 }', disk.partition(4)]);
  }
  writeAt(disk.partition(5), MD_SUPERBLOCK_OFFSET, mdSuperblock12((8 * MiB) / 512));
}

