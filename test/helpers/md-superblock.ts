import { randomBytes } from 'node:crypto';

/**
 * An md RAID superblock, version 1.2 (4 KiB into the member), as mdadm writes it. This
 * kernel has no md driver, so `mdadm --create` cannot run here; the bytes are built from the
 * on-disk format (linux/raid/md_p.h, struct mdp_superblock_1) with a valid checksum, which
 * is what libblkid checks before it reports `linux_raid_member`.
 */
export const MD_SUPERBLOCK_OFFSET = 4096;

export function mdSuperblock12(memberSectors: number): Buffer {
  const maxDev = 2;
  const sb = Buffer.alloc(256 + maxDev * 2);
  sb.writeUInt32LE(0xa92b4efc, 0); // magic
  sb.writeUInt32LE(1, 4); // major_version
  randomBytes(16).copy(sb, 16); // set_uuid
  sb.write('ina-test:0', 32, 'ascii'); // set_name
  sb.writeBigUInt64LE(BigInt(Math.floor(Date.now() / 1000)), 64); // ctime
  sb.writeUInt32LE(1, 72); // level: RAID1
  const dataOffset = 2048;
  sb.writeBigUInt64LE(BigInt(memberSectors - dataOffset), 80); // size
  sb.writeUInt32LE(2, 92); // raid_disks
  sb.writeBigUInt64LE(BigInt(dataOffset), 128); // data_offset
  sb.writeBigUInt64LE(BigInt(memberSectors - dataOffset), 136); // data_size
  sb.writeBigUInt64LE(8n, 144); // super_offset: 8 sectors (version 1.2)
  randomBytes(16).copy(sb, 168); // device_uuid
  sb.writeBigUInt64LE(1n, 200); // events
  sb.writeBigUInt64LE(0xffffffffffffffffn, 208); // resync_offset: clean
  sb.writeUInt32LE(maxDev, 220); // max_dev
  sb.writeUInt16LE(0, 256); // dev_roles[0]
  sb.writeUInt16LE(1, 258); // dev_roles[1]
  sb.writeUInt32LE(checksum(sb), 216);
  return sb;
}

/** calc_sb_1_csum: 32-bit little-endian words summed into 64 bits, folded (sb_csum counted as 0). */
function checksum(sb: Buffer): number {
  let sum = 0n;
  let i = 0;
  for (; i + 4 <= sb.length; i += 4) sum += BigInt(i === 216 ? 0 : sb.readUInt32LE(i));
  if (sb.length - i === 2) sum += BigInt(sb.readUInt16LE(i));
  return Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn);
}
