import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { prerequisite } from '../helpers/env.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';

const haveIronic = prerequisite('Ironic (apt-get install python3-ironic ironic-common)', existsSync(IRONIC_BIN));

/** Flags that make a test agent quick without changing what it does. */
const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1'];

async function machineMacs(): Promise<string[]> {
  const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
  if (macs.length === 0) throw new Error('this machine has no NIC with a MAC; the agent cannot be looked up');
  return macs;
}

const commandsRun = (agent: AgentProcess) =>
  agent.lines.filter((l) => l.msg === 'executing command').map((l) => l.command as string);

describe.skipIf(!haveIronic)('an unmodified Ironic drives the agent through a custom-agent deploy', () => {
  const cases = [
    { name: 'plain HTTP', flags: ['--no-enable-auto-tls'], extraConf: '', scheme: 'http' },
    // require_tls makes Ironic refuse an http:// callback; it then calls the agent with the
    // certificate the agent sent as agent_verify_ca as its only trust anchor.
    { name: 'auto-TLS, with Ironic requiring TLS', flags: [], extraConf: '[agent]\nrequire_tls = true\n', scheme: 'https' },
  ];

  for (const c of cases) {
    describe(c.name, () => {
      let ironic: Ironic;
      let agent: AgentProcess;
      let uuid: string;

      beforeAll(async () => {
        ironic = await Ironic.start({ automatedClean: false, extraConf: c.extraConf });
        uuid = await ironic.enroll({ macs: await machineMacs(), deployInterface: 'custom-agent' });
        agent = await AgentProcess.start({
          cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2 BOOTIF=01-aa-bb-cc-dd-ee-ff`,
          flags: FAST.concat(c.flags),
        });
        await agent.waitForMessage('agent API listening');
      });

      afterAll(async () => {
        await agent?.stop();
        await ironic?.stop();
      });

      test('manageable -> available -> active -> available', async () => {
        const looked = await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 30, 'first heartbeat');
        const agentUrl = looked.driver_internal_info.agent_url as string;
        expect(agentUrl).toBe(`${c.scheme}://127.0.0.1:${agent.port}`);
        if (c.scheme === 'https') expect(looked.driver_internal_info.agent_verify_ca).toMatch(/\.crt$/);
        expect(looked.driver_internal_info.agent_version).toBe('0.1.0');

        await ironic.provision(uuid, 'provide');
        const active = await ironic.provision(uuid, 'active');
        expect(active?.provision_state).toBe('active');
        // custom-agent: the conductor asks for the agent's deploy steps, then powers off through it.
        expect(commandsRun(agent)).toEqual(['deploy.get_deploy_steps', 'standby.power_off']);
        await agent.waitForLog((l) => l.msg === 'simulated boot: forgetting the token and the command log, looking up again');

        const after = await ironic.provision(uuid, 'deleted');
        expect(after?.provision_state).toBe('available');
        expect(after?.last_error).toBeNull();
        // Fresh boot after the simulated power-off: a new lookup, a new token, the same callback URL.
        await ironic.waitFor(uuid, (n) => n.driver_internal_info.agent_url === agentUrl, 30, 'heartbeat after the reboot');
        expect(agent.count('lookup succeeded')).toBeGreaterThanOrEqual(2);
      });
    });
  }
});
