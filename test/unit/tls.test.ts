import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { generateAutoTlsCertificate } from '../../src/api/tls.ts';

describe('auto-TLS certificate (spec §6.1)', () => {
  test.each([
    ['127.0.0.1', 'p384', 'IP Address:127.0.0.1'],
    ['192.0.2.10', 'p256', 'IP Address:192.0.2.10'],
    ['fd00::2', 'p521', 'IP Address:FD00:0:0:0:0:0:0:2'],
    ['[2001:db8::1:0:5]', 'p384', 'IP Address:2001:DB8:0:0:0:1:0:5'],
  ] as const)('%s on %s', (ip, curve, san) => {
    const now = new Date('2026-06-01T12:00:00Z');
    const { certPem, keyPem } = generateAutoTlsCertificate({ ip, curve, allowedClockSkewSeconds: 3600, commonName: 'node-7', now });
    const cert = new X509Certificate(certPem);
    expect(cert.subject).toBe('CN=node-7');
    expect(cert.issuer).toBe('CN=node-7');
    expect(cert.subjectAltName).toBe(san);
    expect(cert.checkIP(ip.replace(/[[\]]/g, ''))).toBeTruthy();
    expect(cert.checkIP('10.9.9.9')).toBeUndefined();
    expect(new Date(cert.validFrom).getTime()).toBe(now.getTime() - 3600_000);
    expect(new Date(cert.validTo).getTime()).toBe(now.getTime() + 30 * 86400_000);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe({ p256: 'prime256v1', p384: 'secp384r1', p521: 'secp521r1' }[curve]);
    expect(createPrivateKey(keyPem).asymmetricKeyType).toBe('ec');
    expect(keyPem).toContain('BEGIN PRIVATE KEY');
  });

  test('the SAN is critical, the signature ECDSA-SHA512, the serial random', () => {
    const a = new X509Certificate(generateAutoTlsCertificate({ ip: '127.0.0.1', curve: 'p384', allowedClockSkewSeconds: 0 }).certPem);
    const b = new X509Certificate(generateAutoTlsCertificate({ ip: '127.0.0.1', curve: 'p384', allowedClockSkewSeconds: 0 }).certPem);
    expect(a.serialNumber).not.toBe(b.serialNumber);
    const der = a.raw;
    // subjectAltName OID 2.5.29.17, then BOOLEAN TRUE (critical)
    expect(der.includes(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11, 0x01, 0x01, 0xff]))).toBe(true);
    // ecdsa-with-SHA512 OID 1.2.840.10045.4.3.4
    expect(der.includes(Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]))).toBe(true);
  });

  test('a host name is refused: Ironic checks the IP', () => {
    expect(() => generateAutoTlsCertificate({ ip: 'agent.local', curve: 'p256', allowedClockSkewSeconds: 0 })).toThrow(/needs an IP address/);
  });
});
