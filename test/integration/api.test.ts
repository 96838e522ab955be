import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { z } from 'zod';
import { command, type Extension } from '../../src/extensions/types.ts';
import { startAgent } from '../helpers/in-process-agent.ts';

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuv';

/** Commands that let a test hold a command RUNNING, fail it, or answer with a string. */
function testExtension() {
  let release: () => void = () => undefined;
  let gate = Promise.resolve();
  const ext: Extension = {
    name: 'test',
    commands: {
      slow: command('async', z.looseObject({}), async () => {
        await gate;
        return 'done slowly';
      }),
      fail_async: command('async', z.looseObject({}), async () => {
        throw new Error('injected failure');
      }),
      echo: command('sync', z.strictObject({ text: z.string() }), async (p) => p.text),
      fail_sync: command('sync', z.looseObject({}), async () => {
        throw new Error('sync boom');
      }),
      secret: command('sync', z.looseObject({}), async () => ({ image_server_password: 'hunter2', visible: 1 })),
    },
  };
  return {
    ext,
    hold: () => {
      gate = new Promise((resolve) => (release = resolve));
    },
    release: () => release(),
  };
}

let api: Awaited<ReturnType<typeof startAgent>>;
const t = testExtension();

beforeAll(async () => {
  api = await startAgent({ flags: { 'agent-token': TOKEN }, extraExtensions: [t.ext] });
});
afterAll(async () => {
  await api?.stop();
});

async function call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${api.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const post = (name: string, params: unknown, query = '') =>
  call('POST', `/v1/commands/?agent_token=${TOKEN}${query}`, { name, params });

describe('agent REST API (spec §6, vectors §12.9)', () => {
  test('GET / describes the API with links to this server', async () => {
    const r = await call('GET', '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.json?.name).toBe('OpenStack Ironic Python Agent API');
    expect(JSON.stringify(r.json)).toContain(`http://127.0.0.1:${api.port}/v1/`);
  });

  test('GET /v1 and /v1/ list status, commands and the media type', async () => {
    for (const path of ['/v1', '/v1/']) {
      const r = await call('GET', path);
      expect(r.status).toBe(200);
      expect(Object.keys(r.json!)).toEqual(expect.arrayContaining(['id', 'links', 'commands', 'status', 'media_types']));
    }
  });

  test('GET /v1/status and /status: started_at and version, no token needed', async () => {
    for (const path of ['/v1/status', '/status']) {
      const r = await call('GET', path);
      expect(r.status).toBe(200);
      expect(r.json?.version).toBe('0.1.0');
      expect(typeof r.json?.started_at).toBe('number');
    }
  });

  test('unknown routes are 404 and wrong methods 405, always with faultstring', async () => {
    const r = await call('GET', '/v1/foo');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ faultcode: 'Client', faultstring: expect.stringMatching(/^404 Not Found: The requested URL was not found/) });
    const m = await call('DELETE', `/v1/commands/?agent_token=${TOKEN}`);
    expect(m.status).toBe(405);
    expect(m.json?.faultstring).toMatch(/^405 Method Not Allowed/);
  });

  test('POST without a token, or with a wrong one, is 401 and runs nothing', async () => {
    const before = (await call('GET', `/v1/commands?agent_token=${TOKEN}`)).json?.commands as unknown[];
    for (const query of ['', '?agent_token=wrong', '?agent_token=']) {
      const r = await call('POST', `/v1/commands/${query}`, { name: 'test.echo', params: { text: 'x' } });
      expect(r.status).toBe(401);
      expect(r.json).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    }
    const after = (await call('GET', `/v1/commands?agent_token=${TOKEN}`)).json?.commands as unknown[];
    expect(after).toHaveLength(before.length);
  });

  test('a wrong token on reads is 401; reads without a token (Ironic 21.4 polls so) see secrets masked', async () => {
    await post('test.secret', {});
    expect((await call('GET', '/v1/commands/?agent_token=wrong')).status).toBe(401);
    const anonymous = await call('GET', '/v1/commands/');
    expect(anonymous.status).toBe(200);
    expect(JSON.stringify(anonymous.json)).not.toContain('hunter2');
    expect(JSON.stringify(anonymous.json)).toContain('"visible":1');
    const authorized = await call('GET', `/v1/commands/?agent_token=${TOKEN}`);
    expect(JSON.stringify(authorized.json)).toContain('hunter2');
  });

  test('body without name/params, or params not an object: 400 "Missing or invalid name or params"', async () => {
    for (const body of [{}, { name: 'clean.get_clean_steps' }, { name: 'x.y', params: [] }, { name: 3, params: {} }, [1]]) {
      const r = await call('POST', `/v1/commands?agent_token=${TOKEN}`, body);
      expect(r.status).toBe(400);
      expect(r.json?.faultcode).toBe('Client');
      expect(r.json?.faultstring).toContain('Missing or invalid name or params');
    }
  });

  test('malformed JSON is 400; the content type is not checked (IPA parses any body as JSON)', async () => {
    const bad = await call('POST', `/v1/commands?agent_token=${TOKEN}`, '{"name": ');
    expect(bad.status).toBe(400);
    expect(bad.json?.faultstring).toMatch(/^400 Bad Request: Failed to decode JSON object/);
    const plain = await call('POST', `/v1/commands?agent_token=${TOKEN}`, JSON.stringify({ name: 'test.echo', params: { text: 'hi' } }), {
      'content-type': 'text/plain',
    });
    expect(plain.status).toBe(200);
    expect(plain.json?.command_result).toEqual({ result: 'hi' });
  });

  test('a huge body is refused with 413 before it is read whole', async () => {
    const big = 'x'.repeat(97 * 1024 * 1024);
    const r = await call('POST', `/v1/commands?agent_token=${TOKEN}`, `{"name":"test.echo","params":{"text":"${big}"}}`);
    expect(r.status).toBe(413);
    expect(r.json?.faultstring).toMatch(/^413 Request Entity Too Large/);
    expect((await call('GET', '/v1/status')).status).toBe(200);
  });

  test('command name errors: no dot 400, unknown extension 404, unknown command 400', async () => {
    const noDot = await post('nodot', {});
    expect(noDot.status).toBe(400);
    expect(noDot.json?.faultstring).toBe('Invalid command: Command name must be of the form <extension>.<name>');
    const ext = await post('bad_extension.fake_command', {});
    expect(ext.status).toBe(404);
    expect(ext.json?.faultstring).toBe('Not found: Extension with id bad_extension not found.');
    const cmd = await post('clean.foo', {});
    expect(cmd.status).toBe(400);
    expect(cmd.json?.faultstring).toBe('Invalid command: Unknown command: foo');
    const proto = await post('test.__proto__', {});
    expect(proto.status).toBe(400);
  });

  test('params that fail validation are 400 and not recorded', async () => {
    const before = ((await call('GET', `/v1/commands?agent_token=${TOKEN}`)).json?.commands as unknown[]).length;
    const r = await post('test.echo', { text: 5, extra: true });
    expect(r.status).toBe(400);
    expect(r.json?.faultstring).toMatch(/^Invalid command parameters: text: .*; Unrecognized key: "extra"/);
    expect(((await call('GET', `/v1/commands?agent_token=${TOKEN}`)).json?.commands as unknown[]).length).toBe(before);
  });

  test('the functional sequence: get_clean_steps is recorded under its bare name and readable by id', async () => {
    const r = await post('clean.get_clean_steps', { node: { uuid: '1', properties: {}, instance_info: {} }, ports: {} }, '&wait=true');
    expect(r.status).toBe(200);
    expect(Object.keys(r.json!)).toEqual(['id', 'command_name', 'command_status', 'command_error', 'command_result']);
    expect(r.json).toMatchObject({ command_name: 'get_clean_steps', command_status: 'SUCCEEDED', command_error: null });
    expect(r.json?.command_result).toEqual({ clean_steps: expect.any(Object), hardware_manager_version: expect.objectContaining({ generic_hardware_manager: '1.2' }) });
    const list = (await call('GET', `/v1/commands/?agent_token=${TOKEN}`)).json?.commands as { id: string }[];
    expect(list.at(-1)).toEqual(r.json);
    const one = await call('GET', `/v1/commands/${r.json?.id as string}?agent_token=${TOKEN}`);
    expect(one.json).toEqual(r.json);
    expect((await call('GET', '/commands/nope')).json?.faultstring).toBe('Not found: Command Result with id nope not found.');
  });

  test('sync results: a string becomes {"result": S}; an exception a FAILED record under the full name', async () => {
    expect((await post('test.echo', { text: 'S' })).json?.command_result).toEqual({ result: 'S' });
    const failed = await post('test.fail_sync', {});
    expect(failed.status).toBe(200);
    expect(failed.json).toMatchObject({
      command_name: 'test.fail_sync',
      command_status: 'FAILED',
      command_result: null,
      command_error: { type: 'CommandExecutionError', code: 500, message: 'Command execution failed', details: 'sync boom' },
    });
  });

  test('async: RUNNING at once, 409 for any POST meanwhile, then "<name>: S"; wait=true blocks', async () => {
    t.hold();
    const started = await post('test.slow', {});
    expect(started.json).toMatchObject({ command_name: 'slow', command_status: 'RUNNING', command_result: null, command_error: null });
    const busy = await post('test.echo', { text: 'x' });
    expect(busy.status).toBe(409);
    expect(busy.json).toEqual({ faultcode: 'Client', faultstring: 'Agent is busy: executing command slow' });
    const waiting = call('GET', `/v1/commands/${started.json?.id as string}?wait=true&agent_token=${TOKEN}`);
    t.release();
    const done = await waiting;
    expect(done.json).toMatchObject({ command_status: 'SUCCEEDED', command_result: { result: 'slow: done slowly' } });
    const failed = await post('test.fail_async', {}, '&wait=true');
    expect(failed.json).toMatchObject({
      command_name: 'fail_async',
      command_status: 'FAILED',
      command_error: { type: 'CommandExecutionError', code: 500, message: 'Command execution failed', details: 'injected failure' },
    });
  });

  test('slash-less and unversioned routes answer directly', async () => {
    for (const path of ['/v1/commands', '/v1/commands/', '/commands', '/commands/']) {
      expect((await call('GET', `${path}?agent_token=${TOKEN}`)).status).toBe(200);
    }
    expect((await call('POST', `/commands?agent_token=${TOKEN}`, { name: 'test.echo', params: { text: 'u' } })).json?.command_result).toEqual({ result: 'u' });
  });
});

describe('JSON-RPC 2.0 at /v1/jsonrpc', () => {
  const rpc = (body: unknown, query = '') => call('POST', `/v1/jsonrpc?agent_token=${TOKEN}${query}`, body);

  test('the same command gives the same result object as REST', async () => {
    const params = { node: { uuid: 'n', properties: {}, instance_info: {} }, ports: [] };
    const rest = (await post('deploy.get_deploy_steps', params)).json!;
    const r = await rpc({ jsonrpc: '2.0', id: 7, method: 'deploy.get_deploy_steps', params });
    expect(r.status).toBe(200);
    expect(r.json?.jsonrpc).toBe('2.0');
    expect(r.json?.id).toBe(7);
    const result = r.json?.result as Record<string, unknown>;
    expect({ ...result, id: 'x' }).toEqual({ ...rest, id: 'x' });
  });

  test('batches run in order; notifications get no answer', async () => {
    const r = await rpc([
      { jsonrpc: '2.0', id: 'a', method: 'test.echo', params: { text: '1' } },
      { jsonrpc: '2.0', method: 'test.echo', params: { text: 'note' } },
      { jsonrpc: '2.0', id: 'b', method: 'test.echo', params: { text: '2' } },
    ]);
    const answers = r.json as unknown as { id: string; result: { command_result: unknown } }[];
    expect(answers.map((a) => [a.id, a.result.command_result])).toEqual([
      ['a', { result: '1' }],
      ['b', { result: '2' }],
    ]);
    const only = await rpc({ jsonrpc: '2.0', method: 'test.echo', params: { text: 'n' } });
    expect(only.status).toBe(204);
  });

  test('standard error codes, with the IPA error in data', async () => {
    expect((await call('POST', `/v1/jsonrpc?agent_token=${TOKEN}`, '{oops')).json).toMatchObject({ id: null, error: { code: -32700 } });
    expect((await rpc([])).json).toMatchObject({ error: { code: -32600 } });
    expect((await rpc({ id: 1, method: 'test.echo' })).json).toMatchObject({ id: 1, error: { code: -32600 } });
    expect((await rpc({ jsonrpc: '2.0', id: 2, method: 'nope.nope' })).json).toMatchObject({
      id: 2, error: { code: -32601, data: { type: 'RequestedObjectNotFoundError', code: 404 } },
    });
    expect((await rpc({ jsonrpc: '2.0', id: 3, method: 'test.nope' })).json).toMatchObject({ error: { code: -32601 } });
    expect((await rpc({ jsonrpc: '2.0', id: 4, method: 'test.echo', params: { text: 1 } })).json).toMatchObject({
      error: { code: -32602, data: { type: 'InvalidCommandParamsError' } },
    });
    expect((await rpc({ jsonrpc: '2.0', id: 5, method: 'test.echo', params: ['x'] })).json).toMatchObject({ error: { code: -32602 } });
    t.hold();
    await rpc({ jsonrpc: '2.0', id: 6, method: 'test.slow', params: {} });
    expect((await rpc({ jsonrpc: '2.0', id: 7, method: 'test.echo', params: { text: 'x' } })).json).toMatchObject({
      error: { code: -32000, message: 'Agent is busy: executing command slow', data: { type: 'AgentIsBusy', code: 409 } },
    });
    t.release();
    const waited = await rpc({ jsonrpc: '2.0', id: 8, method: 'test.slow', params: {} }, '&wait=true').catch(() => undefined);
    expect(waited?.status).toBe(200);
  });

  test('the token is checked as for REST', async () => {
    const r = await call('POST', '/v1/jsonrpc', { jsonrpc: '2.0', id: 1, method: 'test.echo', params: { text: 'x' } });
    expect(r.status).toBe(401);
    expect(r.json?.faultstring).toBe('401 Unauthorized: Token invalid.');
  });
});
