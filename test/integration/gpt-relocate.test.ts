import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { moveBackupGptToEnd, readPartitionTable } from '../../src/writers/partition-table.ts';
import { readBytes } from '../helpers/disk-images.ts';
import { prerequisite } from '../helpers/env.ts';

const MiB = 1 << 20;
const hasSgdisk = prerequisite('sgdisk (gdisk)', (() => {
  try {
    execFileSync('sgdisk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})());

/**
 * The backup GPT moved to the end of a larger disk must be exactly what `sgdisk -e` (IPA's
 * fix_gpt_partition) writes: compared byte for byte on image files.
 */
describe.skipIf(!hasSgdisk)('moveBackupGptToEnd is sgdisk -e without its one-second sleep', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-gpt-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const layouts: [string, string[], number, number][] = [
    ['ESP + root, 64 MiB image on a 200 MiB disk', ['-n', '1:2048:+10M', '-t', '1:ef00', '-n', '2:0:0'], 64, 200],
    ['one partition, 40 MiB image on a 9 GiB disk (CHS past cylinder 1023)', ['-n', '1:2048:0'], 40, 9 * 1024],
    ['three partitions with names, 100 MiB image on a 101 MiB disk', ['-n', '1:2048:+1M', '-c', '1:bios', '-t', '1:ef02', '-n', '2:0:+20M', '-n', '3:0:0', '-c', '3:root'], 100, 101],
  ];

  for (const [name, args, imageMiB, diskMiB] of layouts) {
    test(name, async () => {
      const ours = join(dir, `${imageMiB}-ours.img`);
      const theirs = join(dir, `${imageMiB}-sgdisk.img`);
      execFileSync('truncate', ['-s', `${imageMiB}M`, ours]);
      execFileSync('sgdisk', ['-o', ...args, ours], { stdio: 'ignore' });
      // Boot code and a disk signature, as a BIOS-bootable image has them.
      const mbr = randomBytes(446);
      const fh = await open(ours, 'r+');
      await fh.write(mbr, 0, 446, 0);
      await fh.close();
      execFileSync('truncate', ['-s', `${diskMiB}M`, ours]);
      execFileSync('cp', ['--sparse=always', ours, theirs]);
      execFileSync('sgdisk', ['-e', theirs], { stdio: 'ignore' });

      const head = await readBytes(ours, 0, MiB);
      const table = readPartitionTable(head, 512, ours);
      expect(await moveBackupGptToEnd(ours, head, table, diskMiB * MiB, 512)).toBe(true);
      // sgdisk writes only the first sectors and the end (the old backup stays where it was).
      for (const offset of [0, (imageMiB - 1) * MiB, (diskMiB - 1) * MiB]) {
        expect((await readBytes(ours, offset, MiB)).equals(await readBytes(theirs, offset, MiB)), `the MiB at ${offset}`).toBe(true);
      }
      // Already at the end: nothing to do.
      const again = await readBytes(ours, 0, MiB);
      expect(await moveBackupGptToEnd(ours, again, readPartitionTable(again, 512, ours), diskMiB * MiB, 512)).toBe(false);
    });
  }
});
