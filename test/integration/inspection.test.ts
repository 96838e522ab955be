import { afterEach, describe, expect, test } from 'vitest';
import { gunzipSync } from 'node:zlib';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeIronic, ROOT_1_82, lookupAnswer, type RecordedRequest, type Reply } from '../helpers/fake-ironic.ts';
import { startAgent } from '../helpers/in-process-agent.ts';

/** An inspection endpoint (Ironic's continue_inspection or Inspector's continue) on 127.0.0.1. */
async function inspector(handler: (req: RecordedRequest) => Reply) {
  const server = new FakeIronic(handler);
  const url = await server.start();
  return { server, url };
}

const UUID = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';

describe('inspection at start-up (spec §1.3 step 7, §5)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  test('posts the inventory to the callback URL: interfaces with MACs, root disk, boot interface, configuration, logs', async () => {
    const { server, url } = await inspector(() => ({ status: 202, body: { uuid: UUID } }));
    cleanup.push(() => server.stop());
    const agent = await startAgent({ cmdline: new Map([['ipa-inspection-callback-url', `${url}/v1/continue`], ['BOOTIF', '01-aa-bb-cc-dd-ee-ff']]) });
    cleanup.push(agent.stop);
    expect(server.requests).toHaveLength(1);
    const req = server.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/continue');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-openstack-ironic-api-version']).toBeUndefined();
    const body = JSON.parse(req.body) as Record<string, any>;
    expect(body.inventory.interfaces.length).toBeGreaterThan(0);
    for (const nic of body.inventory.interfaces) expect(nic.mac_address).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(body.inventory.boot).toEqual({ current_boot_mode: expect.stringMatching(/^(uefi|bios)$/), pxe_interface: '01-aa-bb-cc-dd-ee-ff' });
    expect(body.inventory.cpu.count).toBeGreaterThan(0);
    expect(body.inventory.memory.total).toBeGreaterThan(0);
    expect(body.boot_interface).toBe('01-aa-bb-cc-dd-ee-ff');
    // ContainerHardwareManager joins the managers where podman is installed (as in CI).
    expect(body.configuration).toEqual({ collectors: ['default', 'logs'], managers: expect.arrayContaining([{ name: 'generic_hardware_manager', version: '1.2' }]) });
    expect(body.error).toBeNull();
    expect(gunzipSync(Buffer.from(body.logs, 'base64')).length).toBeGreaterThan(0);
    expect(agent.logs().some((l) => l.msg === 'inspection finished successfully' && l.node === UUID)).toBe(true);
  });

  test('5xx and 409 are retried with IPA\'s back-off (5, 5, 6 s); 4xx is not; failures never stop start-up', async () => {
    const replies: Reply[] = [{ status: 503 }, { status: 409 }, { status: 502 }, { status: 200, body: { uuid: UUID } }];
    const { server, url } = await inspector(() => replies.shift() ?? { status: 500 });
    cleanup.push(() => server.stop());
    const clock = new FakeClock();
    const agent = await startAgent({ clock, cmdline: new Map([['ipa-inspection-callback-url', url]]) });
    cleanup.push(agent.stop);
    expect(server.requests).toHaveLength(4);
    expect(clock.sleeps).toEqual([5, 5, 6]);

    const { server: s400, url: u400 } = await inspector(() => ({ status: 400, body: { error: { message: 'bad data' } } }));
    cleanup.push(() => s400.stop());
    const clock400 = new FakeClock();
    const agent400 = await startAgent({ clock: clock400, cmdline: new Map([['ipa-inspection-callback-url', u400]]) });
    cleanup.push(agent400.stop);
    expect(s400.requests).toHaveLength(1);
    expect(clock400.sleeps).toEqual([]);
    expect(agent400.logs().some((l) => l.msg === 'inspection failed, proceeding with lookup' && l.status === 400)).toBe(true);

    const { server: down, url: uDown } = await inspector(() => ({ status: 500 }));
    cleanup.push(() => down.stop());
    const clockDown = new FakeClock();
    const agentDown = await startAgent({ clock: clockDown, cmdline: new Map([['ipa-inspection-callback-url', uDown]]) });
    cleanup.push(agentDown.stop);
    expect(down.requests).toHaveLength(5);
    expect(clockDown.sleeps).toEqual([5, 5, 6, 12]);
  });

  test('an unknown collector is reported in error, the others still run', async () => {
    const { server, url } = await inspector(() => ({ status: 200, body: { uuid: UUID } }));
    cleanup.push(() => server.stop());
    const agent = await startAgent({ cmdline: new Map([['ipa-inspection-callback-url', url], ['ipa-inspection-collectors', 'default,pci-devices,bogus']]) });
    cleanup.push(agent.stop);
    const body = JSON.parse(server.requests[0]!.body) as Record<string, any>;
    expect(body.error).toMatch(/^\* collector bogus is not supported by this agent/);
    expect(Array.isArray(body.pci_devices)).toBe(true);
    expect(body.logs).toBeUndefined();
    expect(body.inventory).toBeDefined();
  });

  test('with ipa-api-url and collectors only: posts to <api>/v1/continue_inspection, then looks up with the node UUID', async () => {
    const ironic = new FakeIronic((req) => {
      if (req.path === '/v1/continue_inspection') return { status: 200, body: { uuid: UUID } };
      if (req.path.startsWith('/v1/lookup')) return lookupAnswer(UUID, 'T'.repeat(43));
      if (req.path === '/' || req.path === '/v1') return ROOT_1_82;
      return { status: 202 };
    });
    const url = await ironic.start();
    cleanup.push(() => ironic.stop());
    const agent = await startAgent({ cmdline: new Map([['ipa-api-url', url], ['ipa-inspection-collectors', 'default']]), flags: { 'enable-auto-tls': false, 'advertise-host': '127.0.0.1' } });
    cleanup.push(agent.stop);
    const paths = ironic.requests.map((r) => r.path);
    const inspectAt = paths.indexOf('/v1/continue_inspection');
    const lookupAt = paths.findIndex((p) => p.startsWith('/v1/lookup'));
    expect(inspectAt).toBeGreaterThanOrEqual(0);
    expect(lookupAt).toBeGreaterThan(inspectAt);
    expect(paths[lookupAt]).toContain(`node_uuid=${UUID}`);
  });
});
