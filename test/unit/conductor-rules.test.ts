import { describe, expect, test } from 'vitest';
import { formatCallbackUrl, parseRouteSource } from '../../src/conductor/advertise.ts';
import { HeartbeatError, ironicErrorText } from '../../src/conductor/errors.ts';
import { parseLookupBody } from '../../src/conductor/schemas.ts';
import { decideToken } from '../../src/conductor/token.ts';
import { atLeast, lower, parseVersion } from '../../src/conductor/version.ts';
import { memoryLogger } from '../helpers/logger.ts';

describe('Ironic error text (spec §2, vectors §12.8)', () => {
  test.each([
    ['Not a JSON', 'Error 404: Not a JSON'],
    [JSON.stringify({ error_message: JSON.stringify({ faultcode: 'Client', faultstring: 'Resource could not be found.', debuginfo: null }) }), 'Error 404: Resource could not be found.'],
    [JSON.stringify({ error_message: { faultstring: 'Resource could not be found.' } }), 'Error 404: Resource could not be found.'],
    [JSON.stringify({ error_message: { code: 404, title: 'Resource could not be found.' } }), 'Error 404: Resource could not be found.'],
  ])('%s', (body, text) => {
    expect(ironicErrorText(404, body)).toBe(text);
  });

  test('a token rejection is recognised (the node was power-cycled)', () => {
    const body = JSON.stringify({ error_message: JSON.stringify({ faultstring: 'Invalid or missing agent token received.' }) });
    expect(new HeartbeatError(400, ironicErrorText(400, body)).tokenRejected).toBe(true);
    expect(new HeartbeatError(400, 'Error 400: Detected change in ramdisk provided callback_url').tokenRejected).toBe(false);
  });
});

describe('agent token rules (spec §3.5)', () => {
  const token = 'x'.repeat(43);
  test.each([
    [undefined, token, { action: 'store', token }],
    ['held-token-held-token-held-token', token, { action: 'store', token }],
    ['held', '******', { action: 'keep' }],
    [undefined, '******', { action: 'fatal' }],
    [undefined, 'short', { action: 'ignore' }],
    [undefined, undefined, { action: 'ignore' }],
  ])('held %s, received %s', (held, received, decision) => {
    expect(decideToken(held, received)).toEqual(decision);
  });
});

describe('callback URL and route source (spec §1.4, vectors §12.11)', () => {
  test.each([
    ['http', '1.2.3.4', 9999, 'http://1.2.3.4:9999'],
    ['http', '1:2::3:4', 9999, 'http://[1:2::3:4]:9999'],
    ['https', '1:2::3:4', 9999, 'https://[1:2::3:4]:9999'],
    ['https', 'agent.example.org', 443, 'https://agent.example.org:443'],
  ] as const)('%s %s %d', (protocol, host, port, url) => {
    expect(formatCallbackUrl(protocol, host, port)).toBe(url);
  });

  test.each([
    ['XXX src 1.2.3.4 XXX', '1.2.3.4'],
    ['XXX src 1:2::3:4 metric XXX', '1:2::3:4'],
    ['192.0.2.1 via 10.0.0.1 dev eth0 src 169.254.3.4 uid 0', undefined],
    ['fe80::1 dev eth0 src fe80::fc:ff:fe00:1 metric 256', undefined],
    ['local 127.0.0.1 dev lo src 127.0.0.1 uid 0\n    cache <local>', '127.0.0.1'],
    ['unreachable', undefined],
  ])('%s', (output, src) => {
    expect(parseRouteSource(output)).toBe(src);
  });
});

describe('microversions', () => {
  test('parse, compare, lower', () => {
    expect(parseVersion('1.82')).toEqual([1, 82]);
    expect(parseVersion('1.x')).toBeUndefined();
    expect(atLeast([1, 68], [1, 68])).toBe(true);
    expect(atLeast([1, 9], [1, 62])).toBe(false);
    expect(lower([1, 82], [1, 62])).toEqual([1, 62]);
    expect(lower([1, 31], [1, 62])).toEqual([1, 31]);
  });
});

describe('lookup answer (spec §3.2, §3.3)', () => {
  const { log } = memoryLogger();
  test('node and config, with the overrides IPA applies', () => {
    const parsed = parseLookupBody(
      {
        node: { uuid: 'u', properties: {}, instance_info: {}, driver_internal_info: {}, links: [] },
        config: {
          heartbeat_timeout: 300, agent_token: 'tok', agent_md5_checksum_enable: false, disable_deep_image_inspection: false,
          permitted_image_formats: ['raw', 'qcow2'], agent_skip_bmc_detect: true, enable_bios_bootloader_install: false,
          tls_min_version: '1.3', tls_cipher_suites: null, metrics: { backend: 'noop' },
        },
      },
      log,
    );
    expect(parsed?.node.uuid).toBe('u');
    expect(parsed?.token).toBe('tok');
    expect(parsed?.settings).toEqual({
      heartbeatTimeout: 300, md5Enabled: false, disableDeepImageInspection: false, permittedImageFormats: ['raw', 'qcow2'],
      agentSkipBmcDetect: true, tlsMinVersion: '1.3',
    });
  });

  test('legacy top-level heartbeat_timeout is accepted; neither is retried', () => {
    expect(parseLookupBody({ node: { uuid: 'u' }, heartbeat_timeout: 60 }, log)?.settings.heartbeatTimeout).toBe(60);
    expect(parseLookupBody({ node: { uuid: 'u' } }, log)).toBeUndefined();
    expect(parseLookupBody({ config: { heartbeat_timeout: 1 } }, log)).toBeUndefined();
    expect(parseLookupBody('nope', log)).toBeUndefined();
  });

  test('override values of the wrong type are ignored', () => {
    const parsed = parseLookupBody({ node: { uuid: 'u' }, config: { heartbeat_timeout: 10, tls_min_version: '1.1', permitted_image_formats: 'raw' } }, log);
    expect(parsed?.settings).toEqual({ heartbeatTimeout: 10 });
  });
});
