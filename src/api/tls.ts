import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { bitString, boolean, explicit, integer, octetString, oid, sequence, set, time, tlv, utf8String } from './der.ts';

const CURVES = { p256: 'prime256v1', p384: 'secp384r1', p521: 'secp521r1' } as const;
const ECDSA_WITH_SHA512 = '1.2.840.10045.4.3.4';
const COMMON_NAME = '2.5.4.3';
const SUBJECT_ALT_NAME = '2.5.29.17';

export interface AutoTlsOptions {
  /** The advertise address: the only name in the certificate, as Ironic checks it (spec §6.1). */
  ip: string;
  curve: keyof typeof CURVES;
  allowedClockSkewSeconds: number;
  commonName?: string;
  now?: Date;
}

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
}

/**
 * The auto-TLS certificate of spec §6.1: a fresh EC key, self-signed, subject = issuer =
 * CN=<hostname>, random serial, valid from now - skew for 30 days, one critical
 * subjectAltName IP:<advertise ip>, signed with ECDSA-SHA512. Ironic pins it as the CA of
 * this agent and verifies the IP, so it must not change while the agent runs.
 */
export function generateAutoTlsCertificate(opts: AutoTlsOptions): TlsMaterial {
  const ip = opts.ip.replace(/^\[|\]$/g, '');
  const family = isIP(ip);
  if (family === 0) throw new Error(`auto-TLS needs an IP address to put into the certificate, got "${opts.ip}"`);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: CURVES[opts.curve] });
  const now = opts.now ?? new Date();
  const name = sequence(set(sequence(oid(COMMON_NAME), utf8String(opts.commonName ?? (hostname() || 'localhost')))));
  const algorithm = sequence(oid(ECDSA_WITH_SHA512));
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const sanIp = tlv(0x87, ipBytes(ip, family));
  const extensions = explicit(3, sequence(sequence(oid(SUBJECT_ALT_NAME), boolean(true), octetString(sequence(sanIp)))));
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    algorithm,
    name,
    sequence(time(new Date(now.getTime() - opts.allowedClockSkewSeconds * 1000)), time(new Date(now.getTime() + 30 * 86400 * 1000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha512', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  const certPem = new X509Certificate(der).toString();
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { certPem, keyPem };
}

function ipBytes(ip: string, family: number): Buffer {
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.concat(all.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

/** Writes agent.crt and agent.key (mode 0600) into the state directory, as IPA does (spec §6.1 step 4). */
export async function writeTlsMaterial(dir: string, material: TlsMaterial): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'agent.crt');
  const keyFile = join(dir, 'agent.key');
  await writeFile(certFile, material.certPem, { mode: 0o644 });
  await writeFile(keyFile, material.keyPem, { mode: 0o600 });
  return { certFile, keyFile };
}

/** Throws unless `keyPem` is a private key; used to check operator-supplied static TLS files early. */
export function assertPrivateKey(keyPem: string | Buffer): void {
  createPrivateKey(keyPem);
}
