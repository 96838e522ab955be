import { afterEach, describe, expect, test } from 'vitest';
import { IronicClient } from '../../src/conductor/client.ts';
import { HeartbeatConflictError, HeartbeatError, IronicConnectionError } from '../../src/conductor/errors.ts';
import { IronicHttp } from '../../src/conductor/http.ts';
import type { Microversion } from '../../src/conductor/version.ts';
import { FakeIronic, ROOT_1_82, lookupAnswer, type RecordedRequest, type Reply } from '../helpers/fake-ironic.ts';
import { memoryLogger } from '../helpers/logger.ts';
import { freePort } from '../helpers/ports.ts';

const fakes: FakeIronic[] = [];
afterEach(async () => {
  while (fakes.length > 0) await fakes.pop()!.stop();
});

async function fake(handler: (r: RecordedRequest) => Reply): Promise<{ fake: FakeIronic; url: string }> {
  const f = new FakeIronic(handler);
  fakes.push(f);
  return { fake: f, url: await f.start() };
}

function client(urls: string[], opts: { version?: Microversion; requestId?: string } = {}) {
  const { log } = memoryLogger();
  const http = new IronicHttp({ urls, timeoutSeconds: 2, insecure: false, tlsMinVersion: '1.2', globalRequestId: opts.requestId, log });
  return new IronicClient(http, { configuredVersion: opts.version, agentVersion: '0.1.0', log });
}

describe('Ironic API client (spec §2-§4, vectors §12.8)', () => {
  test('discovers the version once; lookup at min(version, 1.62) with every MAC; JSON headers and request id', async () => {
    const { fake: f, url } = await fake((r) => (r.path === '/' ? ROOT_1_82 : lookupAnswer('n-1', 't'.repeat(43))));
    const c = client([url], { requestId: 'req-0f0e0d0c-0b0a-4908-8706-050403020100' });
    const out = await c.lookup(['00:0c:29:8c:11:b1', '00:0c:29:8c:11:b2']);
    expect(out.kind).toBe('found');
    await c.lookup(['00:0c:29:8c:11:b1'], 'n-1');
    expect(f.requests.map((r) => r.path)).toEqual([
      '/',
      '/v1/lookup?addresses=00%3A0c%3A29%3A8c%3A11%3Ab1%2C00%3A0c%3A29%3A8c%3A11%3Ab2',
      '/v1/lookup?addresses=00%3A0c%3A29%3A8c%3A11%3Ab1&node_uuid=n-1',
    ]);
    const lookup = f.requests[1]!;
    expect(new URLSearchParams(lookup.path.split('?')[1]).get('addresses')).toBe('00:0c:29:8c:11:b1,00:0c:29:8c:11:b2');
    expect(lookup.headers['x-openstack-ironic-api-version']).toBe('1.62');
    expect(lookup.headers.accept).toBe('application/json');
    expect(lookup.headers['content-type']).toBe('application/json');
    expect(lookup.headers['x-openstack-request-id']).toBe('req-0f0e0d0c-0b0a-4908-8706-050403020100');
    expect(f.requests[0]!.headers['x-openstack-ironic-api-version']).toBeUndefined();
  });

  test('a failed discovery uses 1.31 for that call and is retried next time', async () => {
    let rootCalls = 0;
    const { fake: f, url } = await fake((r) => {
      if (r.path === '/') return ++rootCalls === 1 ? { status: 503, raw: 'down' } : ROOT_1_82;
      return lookupAnswer('n', 'x'.repeat(43));
    });
    const c = client([url]);
    await c.lookup(['aa:bb:cc:dd:ee:ff']);
    await c.lookup(['aa:bb:cc:dd:ee:ff']);
    const versions = f.requests.filter((r) => r.path.startsWith('/v1/lookup')).map((r) => r.headers['x-openstack-ironic-api-version']);
    expect(versions).toEqual(['1.31', '1.62']);
    expect(await c.apiVersion()).toEqual([1, 82]);
  });

  test('a configured version is used without asking', async () => {
    const { fake: f, url } = await fake(() => lookupAnswer('n', 'x'.repeat(43)));
    const c = client([url], { version: [1, 47] });
    expect(await c.apiVersion()).toEqual([1, 47]);
    expect(f.requests).toHaveLength(0);
  });

  test.each([
    [[1, 31], { callback_url: 'http://192.0.2.1:9999' }, '1.31'],
    [[1, 36], { callback_url: 'http://192.0.2.1:9999', agent_version: '0.1.0' }, '1.36'],
    [[1, 62], { callback_url: 'http://192.0.2.1:9999', agent_token: 'magical', agent_version: '0.1.0' }, '1.62'],
    [[1, 82], { callback_url: 'http://192.0.2.1:9999', agent_token: 'magical', agent_version: '0.1.0', agent_verify_ca: 'I am a cert' }, '1.68'],
  ] as const)('heartbeat body at API %j', async (version, body, header) => {
    const { fake: f, url } = await fake(() => ({ status: 202 }));
    await client([url], { version }).heartbeat('n-1', { callbackUrl: 'http://192.0.2.1:9999', token: 'magical', verifyCa: 'I am a cert' });
    expect(f.requests[0]!.method).toBe('POST');
    expect(f.requests[0]!.path).toBe('/v1/heartbeat/n-1');
    expect(f.requests[0]!.headers['x-openstack-ironic-api-version']).toBe(header);
    // key order matters to nobody but is IPA's, and keeps transcripts comparable
    expect(f.requests[0]!.body).toBe(JSON.stringify(body));
  });

  test('heartbeat: 202 is success, 409 a conflict, anything else an error with Ironic text', async () => {
    const replies: Reply[] = [
      { status: 409, body: { error_message: JSON.stringify({ faultstring: 'Node n-1 is locked' }) } },
      { status: 400, body: { error_message: JSON.stringify({ faultstring: 'Invalid or missing agent token received.' }) } },
      { status: 404, raw: 'Not a JSON' },
    ];
    const { url } = await fake(() => replies.shift()!);
    const c = client([url], { version: [1, 68] });
    const beat = () => c.heartbeat('n-1', { callbackUrl: 'http://x:1', token: 't' });
    await expect(beat()).rejects.toBeInstanceOf(HeartbeatConflictError);
    const rejected = await beat().catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(HeartbeatError);
    expect((rejected as HeartbeatError).tokenRejected).toBe(true);
    await expect(beat()).rejects.toThrow('Error 404: Not a JSON');
  });

  test('lookup outcomes: 409 is a lock, 404 and garbage are retried', async () => {
    const replies: Reply[] = [
      { status: 409, raw: '{"error_message": "{\\"faultstring\\": \\"locked\\"}"}' },
      { status: 404, body: { error_message: JSON.stringify({ faultstring: 'Resource could not be found.' }) } },
      { status: 200, raw: '<html>' },
      { status: 200, body: { node: { uuid: 'u' } } },
    ];
    const { url } = await fake(() => replies.shift()!);
    const c = client([url], { version: [1, 82] });
    expect(await c.lookup(['m'])).toEqual({ kind: 'locked', detail: 'Error 409: locked' });
    expect(await c.lookup(['m'])).toEqual({ kind: 'retry', detail: 'Error 404: Resource could not be found.' });
    expect((await c.lookup(['m'])).kind).toBe('retry');
    expect((await c.lookup(['m'])).kind).toBe('retry');
  });

  test('several API URLs: a connection failure moves on, and the one that answered goes first', async () => {
    const deadPort = await freePort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const { fake: f, url } = await fake(() => ({ status: 202 }));
    const { log } = memoryLogger();
    const http = new IronicHttp({ urls: [dead, url], timeoutSeconds: 2, insecure: false, tlsMinVersion: '1.2', log });
    await http.call('POST', '/v1/heartbeat/x', { body: {} });
    expect(http.apiUrls).toEqual([url, dead]);
    expect(f.requests).toHaveLength(1);
    await expect(new IronicHttp({ urls: [dead], timeoutSeconds: 1, insecure: false, tlsMinVersion: '1.2', log }).call('GET', '/')).rejects.toBeInstanceOf(IronicConnectionError);
  });

  test('an HTTP error status is an answer and does not fail over', async () => {
    const { fake: f1, url: u1 } = await fake(() => ({ status: 500, raw: 'oops' }));
    const { fake: f2, url: u2 } = await fake(() => ({ status: 202 }));
    const { log } = memoryLogger();
    const res = await new IronicHttp({ urls: [u1, u2], timeoutSeconds: 2, insecure: false, tlsMinVersion: '1.2', log }).call('GET', '/');
    expect(res.status).toBe(500);
    expect(f1.requests).toHaveLength(1);
    expect(f2.requests).toHaveLength(0);
  });

  test('a server that never answers times out as a connection error', async () => {
    const { url } = await fake(() => 'hang');
    const { log } = memoryLogger();
    const http = new IronicHttp({ urls: [url], timeoutSeconds: 0.5, insecure: false, tlsMinVersion: '1.2', log });
    await expect(http.call('GET', '/')).rejects.toBeInstanceOf(IronicConnectionError);
  });
});
