import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess, type LogLine } from '../helpers/agent-process.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { pluginDir } from '../helpers/plugin-dir.ts';
import { IRONIC_BIN, Ironic, type NodeView } from './harness/ironic.ts';

const canRun = prerequisite('Ironic (apt-get install python3-ironic ironic-common) and root for loop devices', existsSync(IRONIC_BIN) && isRoot);
const EXAMPLE_PLUGINS = fileURLToPath(new URL('../../examples/plugins', import.meta.url));
const TEST_PLUGINS = fileURLToPath(new URL('../fixtures/plugins', import.meta.url));
const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1', '--no-enable-auto-tls', '--debug'];

async function stampOf(device: string): Promise<Record<string, unknown> | undefined> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(4096);
    await fh.read(buf, 0, buf.length, 0);
    const text = buf.toString('utf8').replace(/\0+$/, '');
    return text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
  } finally {
    await fh.close();
  }
}

/** The steps the agent ran, from its own log: one entry per execute_*_step call, with the step as Ironic sent it. */
function executed(agent: AgentProcess, from = 0): { command: string; step: string; args: unknown }[] {
  return agent.lines
    .slice(from)
    .filter((l) => l.msg === 'executing command' && String(l.command).includes('.execute_'))
    .map((l) => {
      const step = (l.params as { step: { step: string; args?: unknown } }).step;
      return { command: String(l.command), step: step.step, args: step.args ?? {} };
    });
}

describe.skipIf(!canRun)('custom-agent with operator plugin steps, driven by an unmodified Ironic', () => {
  let ironic: Ironic;
  let agent: AgentProcess;
  let disk: LoopDevice;
  let uuid: string;

  beforeAll(async () => {
    disk = await LoopDevice.create(64 * 2 ** 20);
    ironic = await Ironic.start({ automatedClean: false });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    uuid = await ironic.enroll({ macs, deployInterface: 'custom-agent', properties: { root_device: { name: disk.path } } });
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
      flags: [...FAST, '--plugin-dir', EXAMPLE_PLUGINS, '--plugin-dir', TEST_PLUGINS, '--allow-device', disk.path],
    });
    await agent.waitForMessage('agent API listening');
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
    await ironic.provision(uuid, 'provide');
  });

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await disk?.destroy();
  });

  test('user deploy_steps run the plugin steps once, in priority order, with their args; Ironic polls the long one', async () => {
    const from = agent.lines.length;
    const deploySteps = [
      { interface: 'deploy', step: 'wait_a_while', args: { seconds: 8 }, priority: 70 },
      { interface: 'deploy', step: 'stamp_root_disk', args: { site: 'fra1', owner: 'e2e' }, priority: 75 },
    ];
    await ironic.provision(uuid, 'active', { wait: null, deploySteps });

    // While the long step runs, Ironic's node shows it as the current step, with the plan and the agent's cached steps.
    const during = await ironic.waitFor(uuid, (n) => (n.deploy_step as { step?: string } | null)?.step === 'wait_a_while', 90, 'the long step to start');
    expect(during.provision_state).toBe('wait call-back');
    expect(during.deploy_step).toMatchObject({ interface: 'deploy', step: 'wait_a_while', args: { seconds: 8 }, priority: 70 });
    const plan = (during.driver_internal_info.deploy_steps as { step: string; priority: number; args: unknown }[]).map((s) => [s.step, s.priority, s.args]);
    expect(plan).toContainEqual(['stamp_root_disk', 75, { site: 'fra1', owner: 'e2e' }]);
    expect(plan.findIndex((s) => s[0] === 'stamp_root_disk')).toBeLessThan(plan.findIndex((s) => s[0] === 'wait_a_while'));
    const cached = during.driver_internal_info.agent_cached_deploy_steps as { deploy: { step: string; priority: number; argsinfo?: unknown }[] };
    expect(cached.deploy).toContainEqual(expect.objectContaining({ step: 'stamp_root_disk', priority: 75, argsinfo: expect.objectContaining({ site: { description: 'Site name written into the stamp', required: true } }) }));
    expect(during.driver_internal_info.hardware_manager_version).toMatchObject({ example_disk_stamp: '1.0', test_steps: '1.0' });

    const active = await ironic.waitState(uuid, 'active', 120);
    expect(active.last_error).toBeNull();
    expect(executed(agent, from)).toEqual([
      { command: 'deploy.execute_deploy_step', step: 'stamp_root_disk', args: { site: 'fra1', owner: 'e2e' } },
      { command: 'deploy.execute_deploy_step', step: 'wait_a_while', args: { seconds: 8 } },
    ]);
    expect(await stampOf(disk.path)).toMatchObject({ site: 'fra1', owner: 'e2e', node: uuid });
    // Ironic followed the long step through GET /v1/commands until it finished (spec §8.7).
    const polls = agent.lines.slice(from).filter((l: LogLine) => l.msg === 'command list requested' && l.last === 'execute_deploy_step');
    expect(polls.some((l) => l.status === 'RUNNING')).toBe(true);
    expect(polls.some((l) => l.status === 'SUCCEEDED')).toBe(true);
    expect(agent.lines.slice(from).filter((l) => l.msg === 'waited')).toHaveLength(1);

    await ironic.provision(uuid, 'deleted');
  });

  test('a plugin step that fails ends in deploy failed with the plugin\'s message', async () => {
    await ironic.provision(uuid, 'active', {
      wait: null,
      deploySteps: [{ interface: 'deploy', step: 'fail_on_purpose', args: { message: 'the site config server refused node' }, priority: 80 }],
    });
    const failed = await ironic.waitFor(uuid, (n) => n.provision_state === 'deploy failed', 120, 'deploy failed');
    expect(failed.last_error).toContain('Unexpected exception performing deploy step fail_on_purpose. Error: the site config server refused node');
    const history = await ironic.api<{ history: { event: string }[] }>('GET', `/v1/nodes/${uuid}/history?detail=true`);
    expect(history.history.some((h) => h.event.includes('the site config server refused node'))).toBe(true);
    await ironic.provision(uuid, 'deleted');
  });

  test('a plugin step that hangs past its timeout ends in deploy failed, and the agent serves the next deploy', async () => {
    await ironic.provision(uuid, 'active', { wait: null, deploySteps: [{ interface: 'deploy', step: 'hang_forever', args: {}, priority: 85 }] });
    const failed = await ironic.waitFor(uuid, (n) => n.provision_state === 'deploy failed', 120, 'deploy failed');
    expect(failed.last_error).toContain(`deploy step hang_forever did not finish within its timeout of 2 s (plugin ${TEST_PLUGINS}/test-steps.ts)`);
    await ironic.provision(uuid, 'deleted');
  });

  test('a deploy step the agent does not offer is refused by Ironic before anything runs', async () => {
    const from = agent.lines.length;
    await ironic.provision(uuid, 'active', { wait: null, deploySteps: [{ interface: 'deploy', step: 'no_such_step', args: {}, priority: 75 }] });
    const failed = await ironic.waitFor(uuid, (n) => n.provision_state === 'deploy failed', 120, 'deploy failed');
    expect(failed.last_error).toMatch(/no_such_step/);
    expect(executed(agent, from)).toEqual([]);
    await ironic.provision(uuid, 'deleted');
  });

  test('a manual clean runs plugin clean steps, resumes after a requested reboot, and polls a long step', async () => {
    expect(await stampOf(disk.path)).toMatchObject({ site: 'fra1' });
    await ironic.provision(uuid, 'manage');
    const from = agent.lines.length;
    const boots = agent.count('simulated boot: forgetting the token and the command log, looking up again');
    const done = (await ironic.provision(uuid, 'clean', {
      timeoutSeconds: 180,
      cleanSteps: [
        { interface: 'deploy', step: 'erase_stamp' },
        { interface: 'deploy', step: 'ask_for_reboot' },
        { interface: 'deploy', step: 'wait_a_while', args: { seconds: 6 } },
      ],
    })) as NodeView;
    expect(done.provision_state).toBe('manageable');
    expect(done.last_error).toBeNull();
    expect(await stampOf(disk.path)).toBeUndefined();
    expect(executed(agent, from).map((e) => e.step)).toEqual(['erase_stamp', 'ask_for_reboot', 'wait_a_while']);
    // Ironic rebooted the node after ask_for_reboot; the agent came back fresh, and Ironic took its
    // empty command list as "freshly booted" and went on with the next step (spec §8.7).
    expect(agent.count('simulated boot: forgetting the token and the command log, looking up again')).toBeGreaterThan(boots);
    const rebootAt = agent.lines.findIndex((l, i) => i >= from && l.msg === 'simulated boot: forgetting the token and the command log, looking up again');
    const lastStepAt = agent.lines.findIndex((l, i) => i >= from && l.msg === 'executing command' && (l.params as { step?: { step?: string } }).step?.step === 'wait_a_while');
    expect(rebootAt).toBeGreaterThan(0);
    expect(lastStepAt).toBeGreaterThan(rebootAt);
  });

  test('a ramdisk with a refused plugin fails the deploy with the reason instead of deploying without it', async () => {
    const broken = await pluginDir({ 'broken.ts': `export default { name: 'broken', version: '1', steps: [{ step: 'x', interface: 'deploy', deploy: { priority: 100 }, run: () => 1 }] };\n` });
    try {
      await agent.stop();
      // A new agent process cannot use the token Ironic issued to the old one: power-cycle the node.
      await ironic.setPower(uuid, 'power off');
      await ironic.setPower(uuid, 'power on');
      agent = await AgentProcess.start({
        cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
        flags: [...FAST, '--plugin-dir', EXAMPLE_PLUGINS, '--plugin-dir', broken.dir, '--allow-device', disk.path],
      });
      await agent.waitForMessage('operator plugin refused');
      await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'heartbeat of the new agent');
      await ironic.provision(uuid, 'provide');
      await ironic.provision(uuid, 'active', { wait: null });
      const failed = await ironic.waitFor(uuid, (n) => n.provision_state === 'deploy failed', 120, 'deploy failed');
      expect(failed.last_error).toContain(`plugin ${broken.dir}/broken.ts: step x: deploy priority 100 is outside the in-band band`);
      expect(executed(agent)).toEqual([]);
    } finally {
      await broken.remove();
    }
  });
});
