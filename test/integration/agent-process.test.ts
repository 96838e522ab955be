import { afterEach, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { AgentProcess } from '../helpers/agent-process.ts';
import { FakeIronic, ROOT_1_82, lookupAnswer, type Reply } from '../helpers/fake-ironic.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function agent(opts: Parameters<typeof AgentProcess.start>[0]): Promise<AgentProcess> {
  const a = await AgentProcess.start(opts);
  cleanup.push(() => a.stop());
  return a;
}

async function fakeIronic(handler: ConstructorParameters<typeof FakeIronic>[0]): Promise<{ fake: FakeIronic; url: string }> {
  const fake = new FakeIronic(handler);
  const url = await fake.start();
  cleanup.push(() => fake.stop());
  return { fake, url };
}

async function postJson(url: string, body: unknown) {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

describe('the agent as a process', () => {
  test('standalone (no ipa-api-url): no lookup, no heartbeat; REST and JSON-RPC answer the same', async () => {
    const a = await agent({ cmdline: 'nofb vga=normal' });
    await a.waitForMessage('agent API listening');
    const base = `http://127.0.0.1:${a.port}`;
    const params = { node: { uuid: 'n', properties: {}, instance_info: {} }, ports: [] };
    const rest = await postJson(`${base}/v1/commands/?wait=true`, { name: 'clean.get_clean_steps', params });
    const rpc = await postJson(`${base}/v1/jsonrpc?wait=true`, { jsonrpc: '2.0', id: 1, method: 'clean.get_clean_steps', params });
    expect(rest.status).toBe(200);
    expect(rest.json.command_status).toBe('SUCCEEDED');
    const result = rpc.json.result as Record<string, unknown>;
    expect({ ...result, id: '' }).toEqual({ ...rest.json, id: '' });
    expect(a.lines.some((l) => /lookup|heartbeat/i.test(l.msg))).toBe(false);
    expect(await a.stop()).toBe(0);
  });

  test('a bad kernel parameter is a clear start-up error (exit 2)', async () => {
    const a = await agent({ cmdline: 'ipa-api-url=http://127.0.0.1:1 ipa-lookup-timeout=soon' });
    expect(await a.wait()).toBe(2);
    expect(a.stderr.join('')).toContain('kernel parameter ipa-lookup-timeout: expected a number >= 0, got "soon"');
  });

  test('Ironic unreachable, 5xx, 404 and garbage on lookup: the agent retries, then looks up and heartbeats', async () => {
    const lookups: Reply[] = [
      'reset',
      { status: 500, raw: 'Internal Server Error' },
      { status: 404, body: { error_message: JSON.stringify({ faultstring: 'Resource could not be found.' }) } },
      { status: 200, raw: 'not json' },
    ];
    const { fake, url } = await fakeIronic((r) => {
      if (r.path === '/') return ROOT_1_82;
      if (r.path.startsWith('/v1/lookup')) return lookups.shift() ?? lookupAnswer('node-1', 'k'.repeat(43));
      if (r.path.startsWith('/v1/heartbeat/')) return { status: 202 };
      return { status: 404 };
    });
    const a = await agent({ cmdline: `ipa-api-url=${url} ipa-lookup-interval=0.05 ipa-lookup-timeout=60`, flags: ['--no-enable-auto-tls', '--lookup-max-interval', '0.2'] });
    await a.waitForMessage('lookup succeeded');
    const deadline = Date.now() + 10_000;
    while (!fake.requests.some((r) => r.path === '/v1/heartbeat/node-1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const beat = fake.requests.find((r) => r.path === '/v1/heartbeat/node-1');
    expect(beat).toBeDefined();
    expect(JSON.parse(beat!.body)).toEqual({ callback_url: `http://127.0.0.1:${a.port}`, agent_token: 'k'.repeat(43), agent_version: '0.1.0' });
    expect(a.lines.filter((l) => l.msg === 'lookup failed, retrying').map((l) => l.problem)).toEqual([
      expect.stringContaining('cannot reach the Ironic API'),
      'Error 500: Internal Server Error',
      'Error 404: Resource could not be found.',
      'lookup answer is not JSON with node.uuid and config',
    ]);
  });

  test('the wait for disks runs beside the lookup, and the API serves only after it', async () => {
    const { url } = await fakeIronic((r) => {
      if (r.path === '/') return ROOT_1_82;
      if (r.path.startsWith('/v1/lookup')) return lookupAnswer('node-1', 'k'.repeat(43));
      return { status: 202 };
    });
    const a = await agent({
      cmdline: `ipa-api-url=${url} ipa-disk-wait-attempts=3 ipa-disk-wait-delay=0.5`,
      flags: ['--no-enable-auto-tls', '--allow-device', '/dev/ina-test-absent-disk'],
    });
    await a.waitForMessage('agent API listening');
    const at = (msg: string) => a.lines.findIndex((l) => l.msg.startsWith(msg));
    expect(at('lookup succeeded')).toBeGreaterThanOrEqual(0);
    expect(at('lookup succeeded')).toBeLessThan(at('no suitable disk found'));
    expect(at('no suitable disk found')).toBeLessThan(at('agent API listening'));
    expect(a.lines.filter((l) => l.msg === 'waiting for disks')).toHaveLength(2);
  });

  test('lookup that never succeeds ends the process with an error after ipa-lookup-timeout (exit 1)', async () => {
    const { url } = await fakeIronic((r) => (r.path === '/' ? ROOT_1_82 : { status: 404, raw: 'nope' }));
    const a = await agent({ cmdline: `ipa-api-url=${url} ipa-lookup-interval=0.1 ipa-lookup-timeout=1` });
    expect(await a.wait()).toBe(1);
    expect(a.stderr.join('')).toMatch(/Could not look up node info after \d+ attempts .*Error 404: nope/);
  });

  test('a masked token with no token held: real power mode refuses to lock down a machine that is not a ramdisk', async () => {
    const { url } = await fakeIronic((r) => (r.path === '/' ? ROOT_1_82 : lookupAnswer('node-1', '******')));
    const a = await agent({ cmdline: `ipa-api-url=${url}` });
    expect(await a.wait()).toBe(1);
    expect(a.stderr.join('')).toMatch(/refusing to lockdown this machine: it does not run from a ramdisk/);
  });

  test('a masked token with --simulate-power: Ironic still holds the old token, so the agent looks up again', async () => {
    let n = 0;
    const { url } = await fakeIronic((r) => {
      if (r.path === '/') return ROOT_1_82;
      if (r.path.startsWith('/v1/lookup')) return lookupAnswer('node-1', ++n < 3 ? '******' : 'z'.repeat(43));
      return { status: 202 };
    });
    const a = await agent({ cmdline: `ipa-api-url=${url} ipa-lookup-interval=0.05`, flags: ['--simulate-power', '--no-enable-auto-tls'] });
    await a.waitForMessage('agent API listening');
    expect(a.count('Ironic still holds a token from before the simulated reboot; looking up again')).toBe(2);
  });

  test('the pre-shared token from ipa-agent-token is required on commands and survives a masked lookup', async () => {
    const { url } = await fakeIronic((r) => {
      if (r.path === '/') return ROOT_1_82;
      if (r.path.startsWith('/v1/lookup')) return lookupAnswer('node-1', '******');
      return { status: 202 };
    });
    const token = 'p'.repeat(43);
    const a = await agent({ cmdline: `ipa-api-url=${url} ipa-agent-token=${token}`, flags: ['--no-enable-auto-tls'] });
    await a.waitForMessage('agent API listening');
    const base = `http://127.0.0.1:${a.port}/v1/commands/`;
    expect((await postJson(`${base}?wait=true`, { name: 'standby.get_partition_uuids', params: {} })).status).toBe(401);
    const ok = await postJson(`${base}?wait=true&agent_token=${token}`, { name: 'standby.get_partition_uuids', params: {} });
    expect(ok.json).toMatchObject({ command_status: 'SUCCEEDED', command_result: {} });
  });
});
