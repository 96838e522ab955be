import { getHashes } from 'node:crypto';
import { basename } from 'node:path/posix';
import type { Logger } from '../log.ts';
import { imageDownloadError, restError } from './errors.ts';
import type { ImageInfo } from './image-info.ts';

/** What the image is verified against: a node:crypto algorithm and the lower-case hex digest. */
export interface ExpectedChecksum {
  algorithm: string;
  value: string;
  /** Where the value came from, for logs and errors. */
  source: string;
}

export const isChecksumUrl = (value: string) => value.startsWith('http://') || value.startsWith('https://');

const MD5_DISABLED = 'MD5 support is disabled, and support will be removed in a 2024 version of Ironic.';

/** IPA's `_get_algorithm_by_length` (spec §9.3): SHA-2 by digest length, MD5 only when enabled. */
export function algorithmByLength(value: string, md5Enabled: boolean): 'sha512' | 'sha256' | 'md5' {
  switch (value.length) {
    case 128:
      return 'sha512';
    case 64:
      return 'sha256';
    case 32:
      if (!md5Enabled) throw new Error(MD5_DISABLED);
      return 'md5';
    default:
      throw new Error('Unable to identify checksum algorithm used, and a value is not specified in the os_hash_algo setting.');
  }
}

/**
 * Glance's `os_hash_algo` names (Python hashlib) to node:crypto names. Only algorithms the
 * runtime really has count as supported, as IPA checks `hashlib.algorithms_available`.
 */
export function nodeHashName(pythonName: string): string | undefined {
  const lower = pythonName.toLowerCase();
  const mapped: Record<string, string> = {
    sha3_224: 'sha3-224', sha3_256: 'sha3-256', sha3_384: 'sha3-384', sha3_512: 'sha3-512',
    blake2b: 'blake2b512', blake2s: 'blake2s256', sha512_224: 'sha512-224', sha512_256: 'sha512-256',
  };
  const name = mapped[lower] ?? lower;
  return getHashes().includes(name) ? name : undefined;
}

const CHECKSUM_ONLY = [/^([a-fA-F\d]{32})$/, /^([a-fA-F\d]{64})$/, /^([a-fA-F\d]{128})$/];
const CHECKSUM_IN_LINE = [
  /^([a-fA-F\d]{32})\s/, /\s([a-fA-F\d]{32})$/,
  /^([a-fA-F\d]{64})\s/, /\s([a-fA-F\d]{64})$/,
  /^([a-fA-F\d]{128})\s/, /\s([a-fA-F\d]{128})$/,
];
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * IPA's checksum file parsing (spec §9.3.1, vectors §12.5): a single bare digest, GNU
 * `sha256sum` lines (text or `*binary`), or BSD/CentOS `SHA256 (name) = digest` lines,
 * matched on the basename of the image's first URL.
 */
export function parseChecksumFile(text: string, checksumUrl: string, imageUrl: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) throw imageDownloadError(checksumUrl, 'Empty checksum file');
  if (lines.length === 1 && !lines[0]!.includes(' ')) {
    for (const matcher of CHECKSUM_ONLY) {
      const m = matcher.exec(lines[0]!);
      if (m) return m[1]!;
    }
    throw imageDownloadError(checksumUrl, `Invalid checksum file (No valid checksum found) ${JSON.stringify(lines)}`);
  }
  const fileName = basename(new URL(imageUrl).pathname);
  const nameMatchers = [
    new RegExp(`\\s[*]?${escapeRegExp(fileName)}$`),
    new RegExp(`\\s\\(${escapeRegExp(fileName)}\\)\\s`),
  ];
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    if (!nameMatchers.some((m) => m.test(line))) continue;
    for (const matcher of CHECKSUM_IN_LINE) {
      const m = matcher.exec(line);
      if (m) return m[1]!;
    }
  }
  throw imageDownloadError(checksumUrl, `Checksum file does not contain name ${fileName}`);
}

export interface ChecksumOptions {
  md5Enabled: boolean;
  /** GET a checksum file with the image's proxies and credentials. */
  fetchText(url: string): Promise<string>;
  log: Logger;
}

/**
 * Chooses the algorithm and the expected digest exactly as IPA's ImageDownload does at the
 * start of a download (spec §9.3), fetching checksum URLs (§9.3.1). MD5 is refused whenever
 * it is disabled, whichever field it comes from.
 */
export async function resolveChecksum(info: ImageInfo, opts: ChecksumOptions): Promise<ExpectedChecksum> {
  const { checksum, osHashAlgo, osHashValue } = info;
  const byLength = (value: string) => {
    try {
      return algorithmByLength(value, opts.md5Enabled);
    } catch (err) {
      throw restError(
        `Unable to proceed with image ${info.id} as the checksum indicator has been used but the algorithm could not be identified. Error: ${(err as Error).message}`,
      );
    }
  };
  const fetchValue = async (url: string) => parseChecksumFile(await opts.fetchText(url), url, info.urls[0]!);

  let algorithm: string | undefined;
  let value: string;
  let source: string;
  const supported = osHashAlgo ? nodeHashName(osHashAlgo) : undefined;
  if (supported && osHashValue) {
    algorithm = supported;
    value = osHashValue;
    source = 'os_hash_value';
  } else if (checksum && isChecksumUrl(checksum)) {
    value = await fetchValue(checksum);
    source = checksum;
    algorithm = supported ?? byLength(value);
  } else if (checksum) {
    algorithm = byLength(checksum);
    value = checksum;
    source = 'checksum';
  } else {
    throw restError(
      `Unable to verify image ${info.id} with available checksums. Please make sure the specified 'os_hash_algo' (currently ${osHashAlgo ?? 'None'}) is supported by this ramdisk, or provide a md5 checksum via the 'checksum' field`,
    );
  }
  if (isChecksumUrl(value)) {
    source = value;
    value = await fetchValue(value);
  }
  if (algorithm === 'md5' && !opts.md5Enabled) throw restError(`Unable to verify image ${info.id}: ${MD5_DISABLED}`);
  if (osHashAlgo) {
    // IPA only warns: a checksum URL of the wrong kind is an easy mistake to make (spec §12.5).
    let detected: string | undefined;
    try {
      detected = algorithmByLength(value, true);
    } catch {
      // an exotic algorithm
    }
    if (detected && detected !== algorithm) {
      opts.log.warn(
        { provided: osHashAlgo, detected },
        `Provided checksum algorithm ${osHashAlgo} does not match the detected algorithm ${detected}. It may be a sign of a user error when providing the algorithm or the checksum URL.`,
      );
    }
  }
  return { algorithm, value: value.toLowerCase(), source };
}
