import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root (loop devices)', isRoot);
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const MiB = 1024 * 1024;

async function command(url: string, name: string, params: unknown) {
  const res = await request(`${url}/v1/commands/?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, params }) });
  return (await res.body.json()) as { command_status: string; command_result: any; command_error: any };
}

describe.skipIf(!canRun)('the inventory of this machine', () => {
  let disk: LoopDevice;
  beforeAll(async () => {
    disk = await LoopDevice.create(48 * MiB);
  });
  afterAll(async () => {
    await disk?.destroy();
  });

  test('poll.get_hardware_info: IPA\'s keys, the allowlisted loop device as the only disk', async () => {
    const agent = await startAgent({ flags: { 'allow-device': [disk.path] }, cmdline: new Map([['BOOTIF', '01-52-54-00-12-34-56']]) });
    try {
      const r = await command(agent.url, 'poll.get_hardware_info', {});
      expect(r.command_status).toBe('SUCCEEDED');
      const inv = r.command_result;
      expect(Object.keys(inv).sort()).toEqual(['bmc_address', 'bmc_v6address', 'boot', 'cpu', 'disks', 'hostname', 'interfaces', 'memory', 'system_vendor'].sort());
      expect(inv.disks).toEqual([expect.objectContaining({ name: disk.path, size: 48 * MiB, logical_sectors: 512 })]);
      expect(inv.disks[0].type).toBeUndefined();
      expect(inv.boot.pxe_interface).toBe('01-52-54-00-12-34-56');
      expect(inv.memory.total).toBeGreaterThan(inv.memory.headroom.ram_available_bytes);
      expect(inv.interfaces.every((n: { mac_address: string }) => !n.mac_address.startsWith('fa:'))).toBe(true);
      expect(inv.system_vendor).toEqual(expect.objectContaining({ firmware: expect.any(Object) }));

      const set = await command(agent.url, 'poll.set_node_info', { node_info: { node: { uuid: 'abc', properties: {} } } });
      expect(set.command_status).toBe('SUCCEEDED');
      expect(agent.agent.context.conductor.nodeUuid).toBe('abc');
    } finally {
      await agent.stop();
    }
  });

  test('ironic-node-agent inventory: JSON when piped, a table on a terminal', () => {
    const json = JSON.parse(execFileSync(process.execPath, [CLI, 'inventory', '--allow-device', disk.path], { encoding: 'utf8' })) as Record<string, any>;
    expect(json.disks.map((d: { name: string }) => d.name)).toEqual([disk.path]);
    expect(json.cpu.count).toBeGreaterThan(0);
    const table = execFileSync('script', ['-qec', `${process.execPath} ${CLI} inventory --allow-device ${disk.path}`, '/dev/null'], { encoding: 'utf8' });
    expect(table).toMatch(/^Host\s+\S+/m);
    expect(table).toContain(`${disk.path}  48 MiB`);
    expect(table).toMatch(/^Network interfaces/m);
    const forced = execFileSync('script', ['-qec', `${process.execPath} ${CLI} inventory --json --allow-device ${disk.path}`, '/dev/null'], { encoding: 'utf8' });
    expect(forced.trimStart().startsWith('{')).toBe(true);
  });
});
