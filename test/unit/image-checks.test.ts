import { describe, expect, test } from 'vitest';
import { algorithmByLength, parseChecksumFile, resolveChecksum } from '../../src/writers/checksum.ts';
import { decideWriteMethod, detectCompression, detectDiskFormat } from '../../src/writers/formats.ts';
import { validateImageInfo, type RawImageInfo } from '../../src/writers/image-info.ts';
import { memoryLogger } from '../helpers/logger.ts';

const h32 = 'a'.repeat(32);
const h64 = 'b'.repeat(64);
const h128 = 'c'.repeat(128);
const IMAGE = 'http://example.com/path/image.img';
const SUMS = 'http://example.com/path/SHA256SUMS';

describe('checksum algorithm by length (spec §12.5)', () => {
  test.each([
    [h128, 'sha512'],
    [h64, 'sha256'],
    [h32, 'md5'],
  ])('%#: %s', (value, algorithm) => {
    expect(algorithmByLength(value, true)).toBe(algorithm);
  });
  test('md5 when disabled, and unknown lengths, are errors', () => {
    expect(() => algorithmByLength(h32, false)).toThrow(/MD5 support is disabled/);
    expect(() => algorithmByLength('fake-checksum', true)).toThrow(/Unable to identify checksum algorithm/);
  });
});

describe('checksum files (spec §12.5)', () => {
  test('a single bare line', () => {
    expect(parseChecksumFile(`${h64}\n`, SUMS, IMAGE)).toBe(h64);
  });
  test('GNU lines, matched on the image file name', () => {
    expect(parseChecksumFile(`foobar  irrelevant file.img\n${h64}  image.img\n`, SUMS, IMAGE)).toBe(h64);
    expect(parseChecksumFile(`${h128} *image.img\n`, SUMS, IMAGE)).toBe(h128);
  });
  test('BSD/CentOS lines', () => {
    const url = 'http://example.com/centos-image.img';
    expect(parseChecksumFile(`# centos-image.img: 1005593088 bytes\nMD5 (centos-image.img) = ${h32}\n`, SUMS, url)).toBe(h32);
    expect(parseChecksumFile(`SHA256 (centos-image.img) = ${h64}\n`, SUMS, url)).toBe(h64);
    expect(parseChecksumFile(`SHA512 (centos-image.img) = ${h128}\n`, SUMS, url)).toBe(h128);
  });
  test('a file without the image, and an empty file', () => {
    expect(() => parseChecksumFile(`foobar  irrelevant file.img\n${h64}  not-my-image.img\n`, SUMS, IMAGE)).toThrow('Checksum file does not contain name image.img');
    expect(() => parseChecksumFile(' ', SUMS, IMAGE)).toThrow('Empty checksum file');
  });
});

describe('choosing the expected digest (spec §9.3)', () => {
  const info = (fields: Partial<RawImageInfo>) => validateImageInfo({ id: 'img', urls: [IMAGE], ...fields } as RawImageInfo, { md5Enabled: true });
  const opts = (files: Record<string, string> = {}) => {
    const { log, lines } = memoryLogger();
    return { lines, opts: { md5Enabled: true, log, fetchText: async (url: string) => files[url] ?? Promise.reject(new Error(`no ${url}`)) } };
  };

  test('os_hash_algo and os_hash_value win over checksum', async () => {
    expect(await resolveChecksum(info({ checksum: h32, os_hash_algo: 'sha512', os_hash_value: h128.toUpperCase() }), opts().opts)).toMatchObject({ algorithm: 'sha512', value: h128 });
  });
  test('a checksum URL is fetched and the algorithm follows the length', async () => {
    expect(await resolveChecksum(info({ checksum: SUMS }), opts({ [SUMS]: `${h64}  image.img\n` }).opts)).toMatchObject({ algorithm: 'sha256', value: h64, source: SUMS });
  });
  test('os_hash_value may be a URL; a mismatching length only warns', async () => {
    const { lines, opts: o } = opts({ [SUMS]: `${h128}\n` });
    expect(await resolveChecksum(info({ os_hash_algo: 'sha256', os_hash_value: SUMS }), o)).toMatchObject({ algorithm: 'sha256', value: h128 });
    expect(lines().some((l) => /does not match the detected algorithm sha512/.test(String(l.msg)))).toBe(true);
  });
  test('md5 is refused when Ironic disabled it', async () => {
    const o = { ...opts().opts, md5Enabled: false };
    await expect(resolveChecksum(info({ os_hash_algo: 'md5', os_hash_value: h32 }), o)).rejects.toThrow(/MD5 support is disabled/);
  });
});

describe('image_info validation (spec §12.6)', () => {
  const ok = (fields: Record<string, unknown>, md5Enabled = true) => validateImageInfo({ id: 'i', urls: [IMAGE], ...fields } as RawImageInfo, { md5Enabled });
  test.each([
    [{ os_hash_algo: 'sha256', os_hash_value: 'x', disk_format: 'qcow2', image_type: 'whole-disk' }],
    [{ os_hash_algo: 'md5', os_hash_value: 'x' }],
    [{ checksum: null, os_hash_algo: 'sha512', os_hash_value: 'x' }],
    [{ checksum: 'https://fake.url' }],
    [{ checksum: h64 }],
    [{ checksum: 'short' }],
  ])('valid %#', (fields) => {
    expect(() => ok(fields)).not.toThrow();
  });
  test.each([
    [{ checksum: 'short' }, false, 'Image checksum is not available'],
    [{ urls: 'string', checksum: h64 }, true, "Image 'urls' must be a list"],
    [{ urls: [], checksum: h64 }, true, "Image 'urls' must be a list"],
    [{ checksum: {} }, true, "Image 'checksum' must be a non-empty string"],
    [{ checksum: '' }, true, "Image 'checksum' must be a non-empty string"],
    [{ os_hash_algo: 'sha256' }, true, "Image 'os_hash_value' must be a non-empty string"],
    [{ os_hash_value: h64 }, true, "Image 'os_hash_algo' must be a non-empty string"],
  ])('invalid %#', (fields, md5Enabled, message) => {
    expect(() => ok(fields, md5Enabled)).toThrow(message);
  });
  test('missing id or urls', () => {
    expect(() => validateImageInfo({ urls: [IMAGE], checksum: h64 } as unknown as RawImageInfo, { md5Enabled: true })).toThrow("Image is missing 'id' field.");
    expect(() => validateImageInfo({ id: 'i', checksum: h64 } as unknown as RawImageInfo, { md5Enabled: true })).toThrow("Image is missing 'urls' field.");
  });
});

describe('formats by magic bytes, and what gets written (spec §9.5)', () => {
  const withAt = (at: number, bytes: number[] | string, size = 64 * 1024) => {
    const b = Buffer.alloc(size);
    (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).copy(b, at);
    return b;
  };
  test('compressions', () => {
    expect(detectCompression(withAt(0, [0x1f, 0x8b, 0x08]))).toBe('gzip');
    expect(detectCompression(withAt(0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))).toBe('xz');
    expect(detectCompression(withAt(0, [0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(withAt(0, [0x50, 0x2a, 0x4d, 0x18]))).toBe('zstd');
    expect(detectCompression(Buffer.alloc(512))).toBe('none');
  });
  test('disk formats', () => {
    expect(detectDiskFormat(withAt(0, [0x51, 0x46, 0x49, 0xfb]))).toBe('qcow2');
    expect(detectDiskFormat(withAt(0, 'KDMV'))).toBe('vmdk');
    expect(detectDiskFormat(withAt(0, 'vhdxfile'))).toBe('vhdx');
    const gpt = withAt(512, 'EFI PART');
    gpt[510] = 0x55;
    gpt[511] = 0xaa;
    expect(detectDiskFormat(gpt)).toBe('gpt');
    expect(detectDiskFormat(withAt(0x8001, 'CD001'))).toBe('iso');
    expect(detectDiskFormat(Buffer.alloc(4096))).toBe('raw');
  });
  const policy = (diskFormat: string | undefined, permitted = ['raw', 'gpt', 'qcow2'], deepInspection = true) => ({ diskFormat, permitted, deepInspection });
  test('raw-like disk_format is written as is; others must be permitted and match', () => {
    expect(decideWriteMethod('qcow2', policy('raw'))).toBe('raw');
    expect(decideWriteMethod('qcow2', policy('qcow2'))).toBe('qcow2');
    expect(decideWriteMethod('gpt', policy(undefined, ['raw']))).toBe('raw');
    expect(() => decideWriteMethod('vmdk', policy('vmdk'))).toThrow('Security: Detected image format was vmdk, but only raw, gpt, qcow2 are allowed');
    expect(() => decideWriteMethod('raw', policy('qcow2'))).toThrow('Security: Expected format was qcow2, but image was actually raw');
    expect(() => decideWriteMethod('vmdk', policy('vmdk', ['vmdk'], true))).toThrow(/not supported by this agent/);
  });
});
