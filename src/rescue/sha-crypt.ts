import { createHash, randomBytes } from 'node:crypto';

/**
 * SHA-crypt ($5$ SHA-256, $6$ SHA-512), the password hashes of glibc's crypt(3) and
 * /etc/shadow, after Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512". Node has no
 * crypt(3), and the rescue password must be a hash the ramdisk's login accepts.
 */
export type ShaCryptId = '5' | '6';

const ALGORITHM: Record<ShaCryptId, 'sha256' | 'sha512'> = { '5': 'sha256', '6': 'sha512' };
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;
const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `$5$salt`, `$6$rounds=N$salt`, or a whole hash (only its setting part is used). */
const SETTING = /^\$([56])\$(?:rounds=(\d+)\$)?([^$:\n]*)/;

/** crypt(password, setting) for $5$ and $6$ settings; throws on any other setting. */
export function shaCrypt(password: string, setting: string): string {
  const m = SETTING.exec(setting);
  if (!m) throw new Error('not a SHA-crypt setting ($5$ or $6$)');
  const id = m[1] as ShaCryptId;
  const explicitRounds = m[2] !== undefined;
  const rounds = explicitRounds ? Math.min(Math.max(Number(m[2]), ROUNDS_MIN), ROUNDS_MAX) : ROUNDS_DEFAULT;
  const salt = Buffer.from(m[3]!, 'utf8').subarray(0, SALT_MAX);
  const digest = shaCryptDigest(ALGORITHM[id], Buffer.from(password, 'utf8'), salt, rounds);
  const prefix = `$${id}$${explicitRounds ? `rounds=${rounds}$` : ''}${salt.toString('utf8')}$`;
  return prefix + encode(digest, id === '5' ? ORDER_256 : ORDER_512);
}

/** A fresh `$<id>$<16 random salt characters>` setting. */
export function randomSetting(id: ShaCryptId, random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(SALT_MAX);
  let salt = '';
  for (const b of bytes) salt += ALPHABET[b & 0x3f];
  return `$${id}$${salt}`;
}

/** True when `hash` is a $5$/$6$ hash of `password` (tests and the CLI check). */
export function verifyShaCrypt(password: string, hash: string): boolean {
  return SETTING.test(hash) && shaCrypt(password, hash) === hash;
}

function shaCryptDigest(algorithm: 'sha256' | 'sha512', pw: Buffer, salt: Buffer, rounds: number): Buffer {
  const h = (...parts: Buffer[]) => {
    const hash = createHash(algorithm);
    for (const p of parts) hash.update(p);
    return hash.digest();
  };
  const size = algorithm === 'sha256' ? 32 : 64;
  const b = h(pw, salt, pw);
  const a = createHash(algorithm).update(pw).update(salt).update(repeatTo(b, pw.length));
  for (let n = pw.length; n > 0; n >>= 1) a.update(n & 1 ? b : pw);
  const digestA = a.digest();

  const dp = createHash(algorithm);
  for (let i = 0; i < pw.length; i++) dp.update(pw);
  const p = repeatTo(dp.digest(), pw.length);
  const ds = createHash(algorithm);
  for (let i = 0; i < 16 + digestA[0]!; i++) ds.update(salt);
  const s = repeatTo(ds.digest(), salt.length);

  let c = digestA;
  for (let i = 0; i < rounds; i++) {
    const round = createHash(algorithm);
    round.update(i & 1 ? p : c);
    if (i % 3 !== 0) round.update(s);
    if (i % 7 !== 0) round.update(p);
    round.update(i & 1 ? c : p);
    c = round.digest();
  }
  if (c.length !== size) throw new Error('unexpected digest size');
  return c;
}

function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let off = 0; off < length; off += block.length) block.copy(out, off, 0, Math.min(block.length, length - off));
  return out;
}

/**
 * The byte triples of the final encoding: group i takes bytes i, i+k, i+2k, rotated by i % 3
 * (to the right for SHA-256, to the left for SHA-512), then the leftover byte(s).
 */
function triples(k: number, groups: number, rotateRight: boolean): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < groups; i++) {
    const t = [i, i + k, i + 2 * k];
    const r = i % 3;
    out.push(rotateRight ? [...t.slice(3 - r), ...t.slice(0, 3 - r)] : [...t.slice(r), ...t.slice(0, r)]);
  }
  return out;
}

const ORDER_256 = { groups: triples(10, 10, true), tail: [-1, 31, 30], tailChars: 3 };
const ORDER_512 = { groups: triples(21, 21, false), tail: [-1, -1, 63], tailChars: 2 };

function encode(d: Buffer, order: { groups: number[][]; tail: number[]; tailChars: number }): string {
  const byte = (i: number) => (i < 0 ? 0 : d[i]!);
  const b64 = (b2: number, b1: number, b0: number, n: number) => {
    let w = (byte(b2) << 16) | (byte(b1) << 8) | byte(b0);
    let s = '';
    for (let i = 0; i < n; i++, w >>= 6) s += ALPHABET[w & 0x3f];
    return s;
  };
  let out = '';
  for (const [x, y, z] of order.groups) out += b64(x!, y!, z!, 4);
  const [x, y, z] = order.tail;
  return out + b64(x!, y!, z!, order.tailChars);
}
