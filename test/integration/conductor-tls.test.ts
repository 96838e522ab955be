import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateAutoTlsCertificate } from '../../src/api/tls.ts';
import { IronicConnectionError } from '../../src/conductor/errors.ts';
import { IronicHttp } from '../../src/conductor/http.ts';
import { memoryLogger } from '../helpers/logger.ts';

/** An HTTPS "Ironic" on 127.0.0.1 with its own self-signed certificate. */
function httpsIronic(maxVersion: 'TLSv1.2' | 'TLSv1.3') {
  // Distinct subjects: OpenSSL finds a trust anchor by subject name.
  const material = generateAutoTlsCertificate({ ip: '127.0.0.1', curve: 'p256', allowedClockSkewSeconds: 60, commonName: `ironic-${maxVersion}` });
  const server = createServer({ cert: material.certPem, key: material.keyPem, maxVersion }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"default_version": {"version": "1.82"}}');
  });
  return { server, material };
}

describe('TLS from the agent to Ironic (spec §2)', () => {
  let tls12: Server;
  let tls13: Server;
  let url12: string;
  let url13: string;
  let cafile: string;

  beforeAll(async () => {
    const a = httpsIronic('TLSv1.2');
    const b = httpsIronic('TLSv1.3');
    tls12 = a.server;
    tls13 = b.server;
    await new Promise<void>((r) => tls12.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => tls13.listen(0, '127.0.0.1', r));
    url12 = `https://127.0.0.1:${(tls12.address() as AddressInfo).port}`;
    url13 = `https://127.0.0.1:${(tls13.address() as AddressInfo).port}`;
    const dir = mkdtempSync(join(tmpdir(), 'ina-ca-'));
    cafile = join(dir, 'ca.pem');
    writeFileSync(cafile, a.material.certPem + b.material.certPem);
  });
  afterAll(() => {
    tls12?.close();
    tls13?.close();
  });

  const http = (urls: string[], o: { cafile?: string; insecure?: boolean; min?: '1.2' | '1.3' } = {}) =>
    new IronicHttp({ urls, timeoutSeconds: 3, insecure: o.insecure ?? false, cafile: o.cafile, tlsMinVersion: o.min ?? '1.2', log: memoryLogger().log });

  test('verified against the CA file', async () => {
    expect((await http([url12], { cafile }).call('GET', '/')).status).toBe(200);
  });

  test('an unknown certificate is a connection error, unless ipa-insecure', async () => {
    await expect(http([url12]).call('GET', '/')).rejects.toBeInstanceOf(IronicConnectionError);
    expect((await http([url12], { insecure: true }).call('GET', '/')).status).toBe(200);
  });

  test('minimum TLS 1.3 refuses a TLS 1.2-only server and accepts a 1.3 one', async () => {
    await expect(http([url12], { cafile, min: '1.3' }).call('GET', '/')).rejects.toThrow(/cannot reach the Ironic API/);
    expect((await http([url13], { cafile, min: '1.3' }).call('GET', '/')).status).toBe(200);
  });

  test('raising the floor later (lookup tls_min_version) applies to the next calls', async () => {
    const client = http([url12], { cafile });
    expect((await client.call('GET', '/')).status).toBe(200);
    client.setTlsMinVersion('1.3');
    await expect(client.call('GET', '/')).rejects.toBeInstanceOf(IronicConnectionError);
  });
});
