import { invalidImage } from './errors.ts';

/**
 * Image formats by magic bytes, never by name (STYLE.md, spec §9.2/§9.5). Two layers: a
 * transport compression around the image (gzip, xz, zstd), then the disk format of what
 * it decodes to (raw, gpt, qcow2, and the formats IPA's inspector knows, so that they are
 * refused by name instead of being written as garbage).
 */
export type Compression = 'gzip' | 'xz' | 'zstd' | 'none';
export type DiskFormat = 'raw' | 'gpt' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi' | 'qed' | 'luks' | 'iso';

/** Bytes needed to tell every format apart (ISO 9660's descriptor sits at 32 KiB). */
export const SNIFF_BYTES = 64 * 1024;

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4) {
    const magic = head.readUInt32LE(0);
    // A zstd frame, or a skippable frame (0x184D2A50..5F) in front of one.
    if (magic === 0xfd2fb528 || (magic & 0xfffffff0) === 0x184d2a50) return 'zstd';
  }
  return 'none';
}

const startsWith = (buf: Buffer, at: number, text: string | number[]) => {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : Buffer.from(text);
  return buf.length >= at + bytes.length && buf.subarray(at, at + bytes.length).equals(bytes);
};

/** The disk format of decoded image bytes (the first SNIFF_BYTES, or all of a smaller image). */
export function detectDiskFormat(head: Buffer): DiskFormat {
  if (startsWith(head, 0, [0x51, 0x46, 0x49, 0xfb])) return 'qcow2';
  if (startsWith(head, 0, 'KDMV') || startsWith(head, 0, '# Disk DescriptorFile')) return 'vmdk';
  if (startsWith(head, 0, 'conectix')) return 'vhd';
  if (startsWith(head, 0, 'vhdxfile')) return 'vhdx';
  if (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (startsWith(head, 0, [0x51, 0x45, 0x44, 0x00])) return 'qed';
  if (startsWith(head, 0, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) return 'luks';
  if (hasGpt(head)) return 'gpt';
  for (const at of [0x8001, 0x8801, 0x9001]) if (startsWith(head, at, 'CD001')) return 'iso';
  return 'raw';
}

/** A protective MBR and a GPT header at LBA 1 of 512- or 4096-byte sectors. */
function hasGpt(head: Buffer): boolean {
  if (head.length < 1024 || head[510] !== 0x55 || head[511] !== 0xaa) return false;
  return startsWith(head, 512, 'EFI PART') || startsWith(head, 4096, 'EFI PART');
}

export interface Qcow2Header {
  version: number;
  virtualSize: number;
  clusterBits: number;
  backingFile: boolean;
  dataFile: boolean;
  encrypted: boolean;
  /** Incompatible feature bits this agent (and qemu-img 7.2) does not know. */
  unknownFeatures: bigint;
  corrupt: boolean;
}

/** Incompatible features: dirty, corrupt, external data file, compression type, extended L2. */
const KNOWN_INCOMPATIBLE = 0b11111n;
const DATA_FILE_BIT = 1n << 2n;
const CORRUPT_BIT = 1n << 1n;
const EXT_DATA_FILE = 0x44415441;

/** The qcow2 header fields the safety check needs (first cluster of the file). */
export function parseQcow2Header(head: Buffer): Qcow2Header {
  if (head.length < 72 || !startsWith(head, 0, [0x51, 0x46, 0x49, 0xfb])) throw invalidImage('Security: Image is not a complete qcow2 header');
  const version = head.readUInt32BE(4);
  const backingOffset = head.readBigUInt64BE(8);
  const clusterBits = head.readUInt32BE(20);
  const virtualSize = Number(head.readBigUInt64BE(24));
  const encrypted = head.readUInt32BE(32) !== 0;
  let incompatible = 0n;
  let extensionsAt = 72;
  if (version >= 3 && head.length >= 104) {
    incompatible = head.readBigUInt64BE(72);
    extensionsAt = head.readUInt32BE(100);
  }
  // The external data file name is a header extension; its presence alone is refused.
  let dataFileExtension = false;
  for (let at = extensionsAt; at + 8 <= head.length && at < 64 * 1024;) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === 0) break;
    if (type === EXT_DATA_FILE) dataFileExtension = true;
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return {
    version,
    virtualSize,
    clusterBits,
    backingFile: backingOffset !== 0n,
    dataFile: (incompatible & DATA_FILE_BIT) !== 0n || dataFileExtension,
    encrypted,
    unknownFeatures: incompatible & ~KNOWN_INCOMPATIBLE,
    corrupt: (incompatible & CORRUPT_BIT) !== 0n,
  };
}

/**
 * The deep-inspection safety check for qcow2 (CVE-2024-44082, spec §9.2/§9.5 B): no backing
 * file, no external data file, nothing qemu-img would resolve outside the image itself.
 * Applied even when deep inspection is disabled: such an image cannot be deployed anyway.
 */
export function checkQcow2Safety(header: Qcow2Header): void {
  const problems: string[] = [];
  if (header.backingFile) problems.push('it has a backing file');
  if (header.dataFile) problems.push('it has an external data file');
  if (header.unknownFeatures !== 0n) problems.push(`it uses unknown incompatible features (0x${header.unknownFeatures.toString(16)})`);
  if (header.encrypted) problems.push('it is encrypted');
  if (header.corrupt) problems.push('it is marked corrupt');
  if (header.clusterBits < 9 || header.clusterBits > 21) problems.push(`its cluster size 2^${header.clusterBits} is invalid`);
  if (problems.length > 0) throw invalidImage(`Security: Image failed safety check: qcow2 image rejected because ${problems.join(', ')}`);
}

export interface FormatPolicy {
  /** Ironic's `disk_format`; `raw`/`gpt` skip inspection (IPA's RAW_LIKE_IMAGETYPES). */
  diskFormat: string | undefined;
  permitted: readonly string[];
  deepInspection: boolean;
}

/** How the decoded image is written. */
export type WriteMethod = 'raw' | 'qcow2';

/**
 * IPA's `get_and_validate_image_format` (spec §9.5 B, §14.5) applied to the sniffed format:
 * a raw-like disk_format is written as is, otherwise the detected format must be permitted
 * and must match what Ironic said. A detected `gpt` is written as raw and is permitted when
 * either `gpt` or `raw` is. Formats this agent cannot convert are refused by name.
 */
export function decideWriteMethod(detected: DiskFormat, policy: FormatPolicy): WriteMethod {
  if (policy.diskFormat === 'raw' || policy.diskFormat === 'gpt') return 'raw';
  if (policy.deepInspection) {
    const permitted = policy.permitted.includes(detected) || (detected === 'gpt' && policy.permitted.includes('raw'));
    if (!permitted) {
      throw invalidImage(`Security: Detected image format was ${detected}, but only ${policy.permitted.join(', ')} are allowed`);
    }
    const expected = policy.diskFormat;
    const same = expected === detected || (expected === 'raw' && detected === 'gpt');
    if (expected && expected !== 'unknown' && !same) {
      throw invalidImage(`Security: Expected format was ${expected}, but image was actually ${detected}`);
    }
  }
  switch (detected) {
    case 'raw':
    case 'gpt':
    case 'iso':
      return 'raw';
    case 'qcow2':
      return 'qcow2';
    default:
      throw invalidImage(`Image format ${detected} is not supported by this agent; convert the image to raw or qcow2`);
  }
}
