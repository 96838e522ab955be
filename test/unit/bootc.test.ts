import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { validateAuthorizedKeys } from '../../src/bootc/authorized-keys.ts';
import { parseImageSource } from '../../src/bootc/image-ref.ts';
import { installArgv, podmanEnv } from '../../src/bootc/install.ts';
import { rootSizeMiB } from '../../src/bootc/layout.ts';
import { decodePullSecret, withAuthFile } from '../../src/bootc/pull-secret.ts';
import { classifyPullError } from '../../src/bootc/registry-errors.ts';

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHc2eZ0KVbN0d1b1UZx7m8m3n9hOQ2QeBq5l0bqzV4Xk user@host';
const work = mkdtempSync(join(tmpdir(), 'ina-bootc-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('bootc inputs', () => {
  test('oci:// references with ports and digests parse; bad ones are refused', () => {
    expect(parseImageSource('oci://127.0.0.1:5443/test/img:1')).toEqual({ ref: '127.0.0.1:5443/test/img:1', registry: '127.0.0.1:5443' });
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseImageSource(`oci://quay.io/org/img@${digest}`).ref).toBe(`quay.io/org/img@${digest}`);
    expect(() => parseImageSource('docker://quay.io/org/img')).toThrow(/oci:\/\//);
    expect(() => parseImageSource('oci://quay.io/org/img@sha256:abc')).toThrow(/digest/);
    expect(() => parseImageSource('oci://quay.io:99999/org/img')).toThrow(/port/);
    expect(() => parseImageSource('oci://img')).toThrow(/registry/);
  });

  test('the pull secret is decoded twice, and errors never quote it', () => {
    const auth = Buffer.from('testuser:s3cret-pass').toString('base64');
    expect(decodePullSecret(Buffer.from(auth).toString('base64'))).toBe(auth);
    expect(() => decodePullSecret('not base64!!')).toThrow(/not valid base64/);
    try {
      decodePullSecret(Buffer.from('plain-token').toString('base64'));
    } catch (err) {
      expect(String((err as Error & { details?: string }).details ?? err)).not.toContain('plain-token');
    }
  });

  test('authorized keys are checked line by line', () => {
    expect(validateAuthorizedKeys(`# c\n${ED25519}\n\n`)).toBe(`${ED25519}\n`);
    expect(() => validateAuthorizedKeys(`${ED25519}\nssh-rsa garbage`)).toThrow(/line 2/);
    expect(() => validateAuthorizedKeys('ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHc2eZ0KVbN0d1b1UZx7m8m3n9hOQ2QeBq5l0bqzV4Xk')).toThrow(/line 1/);
  });

  test('root size leaves room for the config drive, with the LUKS /boot too; small disks are refused', () => {
    expect(rootSizeMiB('/dev/x', 3 * 2 ** 30, false)).toBe(3072 - 768);
    expect(rootSizeMiB('/dev/x', 3 * 2 ** 30, true)).toBe(3072 - 768 - 510);
    expect(() => rootSizeMiB('/dev/x', 1024 * 2 ** 20, true)).toThrow(/too small/);
  });
});

describe('bootc execution', () => {
  test('the auth file is 0600 in a private directory and gone after success and failure', async () => {
    let seen = '';
    await withAuthFile(work, 'r:1', 'QQ==', async (p) => {
      seen = p;
      expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(statSync(join(p, '..')).mode & 0o777).toBe(0o700);
    });
    expect(existsSync(seen)).toBe(false);
    await expect(withAuthFile(work, 'r:1', 'QQ==', async () => { throw new Error('pull failed'); })).rejects.toThrow('pull failed');
    expect(readdirSync(work)).toEqual([]);
  });

  test('install argv: keys bind-mounted outside /tmp, no debug log level, no agent state, scrubbed env', () => {
    const argv = installArgv({ image: 'r/i:1', device: '/dev/loop9', graphRoot: '/g', rootMiB: 100, tpm2Luks: true, selinux: false, keysDir: '/run/k/keys-1' });
    expect(argv).toEqual(['run', '--rm', '--privileged', '--pid=host', '--pull=never', '-v', '/g:/var/lib/containers/storage', '-v', '/dev:/dev',
      '-v', '/run/k/keys-1:/run/k/keys-1:ro', 'r/i:1', 'bootc', 'install', 'to-disk', '--wipe', '--skip-fetch-check', '--root-size=100M',
      '--block-setup=tpm2-luks', '--root-ssh-authorized-keys=/run/k/keys-1/authorized_keys', '--disable-selinux', '/dev/loop9']);
    expect(podmanEnv({ PATH: '/bin', IPA_TOKEN: 'x', CONTAINERS_CONF: '/c' })).toEqual({ PATH: '/bin', CONTAINERS_CONF: '/c' });
  });

  test('registry errors are told apart (spec/bootc.md §3 messages)', () => {
    expect(classifyPullError('reading manifest 1 in 127.0.0.1:5443/test/tiny: unauthorized: authentication required')).toBe('auth');
    expect(classifyPullError('manifest unknown: manifest unknown')).toBe('missing');
    expect(classifyPullError('x509: certificate signed by unknown authority')).toBe('tls');
    expect(classifyPullError('dial tcp 127.0.0.1:5999: connect: connection refused')).toBe('network');
  });
});
