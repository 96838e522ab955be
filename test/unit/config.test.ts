import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ConfigError, OPTIONS, flagName, parseKernelCmdline, resolveConfig } from '../../src/config.ts';
import { OPTIONS_BEGIN, OPTIONS_END, optionsMarkdown } from '../../src/config/reference.ts';

const params = (text: string) => parseKernelCmdline(text);

describe('kernel command line parsing (spec §1.1)', () => {
  test('key=value tokens become parameters; tokens without = are ignored; the later token wins', () => {
    const p = params('BOOT_IMAGE=/vmlinuz quiet ipa-api-url=http://a:6385 ipa-debug=1  ipa-debug=0 nofb vga=normal');
    expect(p.get('ipa-api-url')).toBe('http://a:6385');
    expect(p.get('ipa-debug')).toBe('0');
    expect(p.has('quiet')).toBe(false);
    expect(p.get('vga')).toBe('normal');
  });

  test('values are literal and split at the first =', () => {
    expect(params('ipa-agent-token=abc=def').get('ipa-agent-token')).toBe('abc=def');
    expect(params('x="quoted value"').get('x')).toBe('"quoted');
  });
});

describe('resolveConfig', () => {
  test('defaults match IPA', () => {
    const c = resolveConfig({ kernelParams: new Map(), ipv6Enabled: true });
    expect(c.apiUrls).toEqual([]);
    expect(c.listenHost).toBe('::');
    expect(c.listenPort).toBe(9999);
    expect(c.advertisePort).toBe(9999);
    expect(c.lookupTimeout).toBe(600);
    expect(c.lookupInterval).toBe(1);
    expect(c.httpRequestTimeout).toBe(30);
    expect(c.tlsCertificateCurve).toBe('p384');
    expect(c.enableAutoTls).toBe(true);
    expect(c.imageDownloadConnectionRetries).toBe(9);
    expect(c.simulatePower).toBe(false);
    expect(resolveConfig({ kernelParams: new Map(), ipv6Enabled: false }).listenHost).toBe('0.0.0.0');
  });

  test('IPA kernel parameters are read and typed', () => {
    const c = resolveConfig({
      kernelParams: params(
        'ipa-api-url=http://10.0.0.1:6385,,https://[fd00::1]:6385/ ipa-insecure=1 ipa-agent-token=tok ' +
          'ipa-global-request-id=req-3c3a0f5a-7b5f-4d2e-9f5e-0a0b0c0d0e0f ipa-listen-port=9998 ipa-advertise-host=192.0.2.9 ' +
          'ipa-lookup-timeout=30 ipa-lookup-interval=0.5 BOOTIF=01-52-54-00-12-34-56 ipa-debug=true ipa-tls-min-version=1.3 ' +
          'ipa-ironic-api-version=1.68 ipa-image-download-connection-timeout=5 ina-allow-device=/dev/vda,/dev/vdb',
      ),
    });
    expect(c.apiUrls).toEqual(['http://10.0.0.1:6385', 'https://[fd00::1]:6385']);
    expect(c.insecure).toBe(true);
    expect(c.agentToken).toBe('tok');
    expect(c.globalRequestId).toBe('req-3c3a0f5a-7b5f-4d2e-9f5e-0a0b0c0d0e0f');
    expect(c.listenPort).toBe(9998);
    expect(c.advertiseHost).toBe('192.0.2.9');
    expect(c.lookupTimeout).toBe(30);
    expect(c.lookupInterval).toBe(0.5);
    expect(c.bootif).toBe('01-52-54-00-12-34-56');
    expect(c.debug).toBe(true);
    expect(c.tlsMinVersion).toBe('1.3');
    expect(c.ironicApiVersion).toEqual([1, 68]);
    expect(c.imageDownloadConnectionTimeout).toBe(5);
    expect(c.allowDevice).toEqual(['/dev/vda', '/dev/vdb']);
  });

  test('flags override kernel parameters; repeatable flags accumulate', () => {
    const c = resolveConfig({
      kernelParams: params('ipa-api-url=http://a:1 ipa-listen-port=1000 ina-allow-device=/dev/vda'),
      flags: { 'api-url': 'http://b:2', 'listen-port': '2000', 'allow-device': ['/dev/loop1', '/dev/loop2'], 'simulate-power': true },
    });
    expect(c.apiUrls).toEqual(['http://b:2']);
    expect(c.listenPort).toBe(2000);
    expect(c.allowDevice).toEqual(['/dev/loop1', '/dev/loop2']);
    expect(c.simulatePower).toBe(true);
  });

  test('every invalid value is reported at once, naming where it came from', () => {
    let error: unknown;
    try {
      resolveConfig({
        kernelParams: params('ipa-api-url=ftp://x ipa-lookup-timeout=abc ipa-insecure=maybe ipa-listen-port=70000 ipa-tls-min-version=1.1'),
        flags: { 'advertise-port': '0' },
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = (error as Error).message;
    expect(text).toContain('kernel parameter ipa-api-url: "ftp://x" is not an http(s) URL');
    expect(text).toContain('kernel parameter ipa-lookup-timeout: expected a number >= 0, got "abc"');
    expect(text).toContain('kernel parameter ipa-insecure: expected a boolean');
    expect(text).toContain('kernel parameter ipa-listen-port: expected an integer between 1 and 65535, got "70000"');
    expect(text).toContain('kernel parameter ipa-tls-min-version: expected one of 1.2, 1.3');
    expect(text).toContain('--advertise-port: expected an integer between 1 and 65535, got "0"');
  });

  test('mDNS discovery is refused with a clear message', () => {
    expect(() => resolveConfig({ kernelParams: params('ipa-api-url=mdns') })).toThrow(/mDNS discovery .* is not supported/);
  });

  test('cross-field rules: static TLS needs a certificate and a key', () => {
    expect(() => resolveConfig({ kernelParams: new Map(), flags: { 'listen-tls': true } })).toThrow(/needs both --tls-cert-file and --tls-key-file/);
    expect(() => resolveConfig({ kernelParams: new Map(), flags: { certfile: '/c.pem' } })).toThrow(/needs both --certfile and --keyfile/);
  });

  test('a device allowlist must hold absolute paths', () => {
    expect(() => resolveConfig({ kernelParams: params('ina-allow-device=sda') })).toThrow(/"sda" is not an absolute path/);
  });
});

describe('README configuration reference', () => {
  test('is the table generated from the code (npm run docs)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf(OPTIONS_BEGIN);
    const end = readme.indexOf(OPTIONS_END);
    expect(start).toBeGreaterThan(0);
    expect(readme.slice(start + OPTIONS_BEGIN.length, end).trim()).toBe(optionsMarkdown());
  });

  test.each(Object.entries(OPTIONS).map(([name, spec]) => [name, spec.param]))('names %s', (name, param) => {
    const table = optionsMarkdown();
    expect(table).toContain(`--${flagName(name)}`);
    if (param) expect(table).toContain(`\`${param}\``);
  });
});
