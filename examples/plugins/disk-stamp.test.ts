/**
 * The example plugin's own test, the way an operator tests a plugin before building a
 * ramdisk: check the directory with `ironic-node-agent steps --plugins DIR`, then run the
 * agent as its own process with the plugin directory and a loop device as the only disk it
 * may write, and call the steps as Ironic would.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { AgentProcess } from '../../test/helpers/agent-process.ts';
import { isRoot, prerequisite } from '../../test/helpers/env.ts';
import { LoopDevice } from '../../test/helpers/loop.ts';

const PLUGINS = fileURLToPath(new URL('.', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const TOKEN = 'example-token-0123456789abcdefghijklmnopq';

async function firstBytes(device: string, n = 4096): Promise<string> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, 0);
    return buf.toString('utf8').replace(/\0+$/, '');
  } finally {
    await fh.close();
  }
}

test('ironic-node-agent steps --plugins examples/plugins accepts the plugin and lists its steps', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'steps', '--plugins', PLUGINS]);
  expect(stdout).toContain(`ok      ${PLUGINS}disk-stamp.ts: example_disk_stamp 1.0 (stamp_root_disk, erase_stamp)`);
  expect(stdout).toMatch(/deploy steps:\n {3}75 {2}deploy\.stamp_root_disk {2}\[example_disk_stamp\] {2}args: site\*, owner\n/);
  expect(stdout).toMatch(/clean steps:\n(.*\n)* {4}0 {2}deploy\.erase_stamp {2}\[example_disk_stamp\]/);
});

describe.skipIf(!prerequisite('root (loop devices)', isRoot))('the example plugin in a running agent', () => {
  let disk: LoopDevice;
  let agent: AgentProcess;

  beforeAll(async () => {
    disk = await LoopDevice.create(64 * 2 ** 20);
    agent = await AgentProcess.start({ flags: ['--agent-token', TOKEN, '--plugin-dir', PLUGINS, '--allow-device', disk.path] });
    await agent.waitForMessage('agent API listening');
  });
  afterAll(async () => {
    await agent?.stop();
    await disk?.destroy();
  });

  async function step(kind: 'deploy' | 'clean', name: string, args: Record<string, unknown>) {
    const res = await request(`http://127.0.0.1:${agent.port}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: `${kind}.execute_${kind}_step`,
        params: { step: { interface: 'deploy', step: name, args }, node: { uuid: 'node-9', properties: { root_device: { name: disk.path } } }, ports: [] },
      }),
    });
    return (await res.body.json()) as { command_status: string; command_result: Record<string, unknown>; command_error: { details: string } | null };
  }

  test('stamp_root_disk writes the stamp with its args; erase_stamp removes it', async () => {
    const r = await step('deploy', 'stamp_root_disk', { site: 'fra1', owner: 'storage-team' });
    expect(r.command_error).toBeNull();
    expect(r.command_result.deploy_result).toEqual({ device: disk.path, site: 'fra1' });
    expect(JSON.parse(await firstBytes(disk.path))).toMatchObject({ magic: 'ironic-node-agent example stamp', node: 'node-9', site: 'fra1', owner: 'storage-team' });

    const erased = await step('clean', 'erase_stamp', {});
    expect(erased.command_result.clean_result).toEqual({ device: disk.path, erased: true, site: 'fra1' });
    expect(await firstBytes(disk.path)).toBe('');
  });

  test('a missing site is refused before the disk is touched', async () => {
    const r = await step('deploy', 'stamp_root_disk', { owner: 'x' });
    expect(r.command_error?.details).toBe('deploy step stamp_root_disk: missing required argument "site" (Site name written into the stamp)');
    expect(await firstBytes(disk.path)).toBe('');
  });

  test('a disk outside the allowlist is refused by the disk guard', async () => {
    const res = await request(`http://127.0.0.1:${agent.port}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'deploy.execute_deploy_step',
        params: { step: { interface: 'deploy', step: 'stamp_root_disk', args: { site: 'x' } }, node: { properties: { root_device: { name: '/dev/vda' } } }, ports: [] },
      }),
    });
    const r = (await res.body.json()) as { command_error: { type: string; details: string } };
    expect(r.command_error.type).toBe('DeviceNotFound');
  });
});
