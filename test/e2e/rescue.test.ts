import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { verifyShaCrypt } from '../../src/rescue/sha-crypt.ts';
import { runCommand } from '../../src/run.ts';
import { agentApiAnswers } from '../helpers/agent-commands.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { prerequisite } from '../helpers/env.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';

const canRun = prerequisite('Ironic (apt-get install python3-ironic ironic-common)', existsSync(IRONIC_BIN));

const SHADOW = 'root:*:19000:0:99999:7:::\nrescue:!:19000:0:99999:7:::\n';

/**
 * Ironic's `agent` rescue interface, unmodified: rescue powers the node off and on into the
 * ramdisk, waits for a heartbeat in "rescue wait" and calls rescue.finalize_rescue with the
 * hash of the operator's password (spec §7.5); unrescue boots the instance again.
 */
describe.skipIf(!canRun)('an unmodified Ironic rescues a deployed node through the agent', () => {
  let dir: string;
  let ironic: Ironic;
  let agent: AgentProcess;
  let uuid: string;
  let shadow: string;

  const passwordFile = () => join(agent.directory, 'rescue', 'ipa-rescue-password');
  const apiAnswers = () => agentApiAnswers(`http://127.0.0.1:${agent.port}`);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-e2e-rescue-'));
    shadow = join(dir, 'shadow');
    await writeFile(shadow, SHADOW, { mode: 0o640 });
    // Fake boot cannot validate a rescue ramdisk; with manage_agent_boot off Ironic leaves
    // booting the agent to its operator (here: the agent is already running) and asks nothing
    // of the boot interface. A `direct` deploy then fails on fake management (it asks for boot
    // device "disk"), so the node is deployed with custom-agent: rescue needs an active node
    // whose deploy interface takes heartbeats; image deploys are covered by direct-deploy.test.ts.
    ironic = await Ironic.start({ automatedClean: false, extraConf: '[agent]\nmanage_agent_boot = false\n' });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    uuid = await ironic.enroll({ macs, deployInterface: 'custom-agent', rescueInterface: 'agent' });
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
      flags: ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1', '--rescue-shadow-file', shadow],
    });
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
    await ironic.provision(uuid, 'provide');
    await ironic.provision(uuid, 'active', { timeoutSeconds: 120 });
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('rescue: the rescue user gets the password Ironic hashed; the agent then serves nothing', async () => {
    const node = await ironic.provision(uuid, 'rescue', { rescuePassword: 'first rescue pw', timeoutSeconds: 180 });
    expect(node?.provision_state).toBe('rescue');
    expect(node?.last_error).toBeNull();
    const hash = readFileSync(passwordFile(), 'utf8');
    // Ironic sends its own SHA-256 crypt hash with hashed=true; the agent writes it as sent.
    expect(hash).toMatch(/^\$5\$/);
    expect(verifyShaCrypt('first rescue pw', hash)).toBe(true);
    expect(readFileSync(shadow, 'utf8')).toBe(SHADOW.replace('rescue:!:19000:', `rescue:${hash}:${Math.floor(Date.now() / 86_400_000)}:`));
    await agent.waitForMessage('rescue finalized: the API and the heartbeat are stopped for good');
    expect(await apiAnswers()).toBe(false);
    const finalizes = agent.lines.filter((l) => l.msg === 'rescue password set');
    expect(finalizes).toHaveLength(1);
  });

  test('unrescue, then rescue again: the powered-on ramdisk looks up, heartbeats and is rescued with the new password', async () => {
    expect((await ironic.provision(uuid, 'unrescue', { timeoutSeconds: 120 }))?.provision_state).toBe('active');
    const node = await ironic.provision(uuid, 'rescue', { rescuePassword: 'second rescue pw', timeoutSeconds: 180 });
    expect(node?.provision_state).toBe('rescue');
    expect(agent.lines.some((l) => l.msg === 'simulation: Ironic issued a new token, the rescued node was rebooted')).toBe(true);
    expect(verifyShaCrypt('second rescue pw', readFileSync(passwordFile(), 'utf8'))).toBe(true);
    expect(agent.lines.filter((l) => l.msg === 'rescue password set')).toHaveLength(2);
  });

  test('unrescue and undeploy: the node ends available', async () => {
    expect((await ironic.provision(uuid, 'unrescue', { timeoutSeconds: 120 }))?.provision_state).toBe('active');
    expect((await ironic.provision(uuid, 'deleted', { timeoutSeconds: 120 }))?.provision_state).toBe('available');
  });
});
