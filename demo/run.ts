import { listInterfaces } from '../src/hardware/interfaces.ts';
import { runCommand } from '../src/run.ts';
import { AgentProcess, type LogLine } from '../test/helpers/agent-process.ts';
import { Ironic } from '../test/e2e/harness/ironic.ts';

/**
 * The demo (`npm run demo`): a real Ironic on 127.0.0.1 drives the agent, started as its own
 * process, through a node's life: manageable -> available -> active -> available. Power
 * actions are simulated, so this machine is never powered off. Human output on stderr.
 */
const started = performance.now();
const say = (text: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}\n`);

function narrate(line: LogLine): void {
  const interesting: Record<string, (l: LogLine) => string> = {
    'lookup succeeded': (l) => `agent: looked itself up, node ${String(l.node)}`,
    'auto-TLS certificate generated': (l) => `agent: generated its TLS certificate for ${String(l.ip)}`,
    'agent API listening': (l) => `agent: serving the command API (${String(l.scheme)}) on port ${String(l.port)}`,
    'executing command': (l) => `agent: conductor called ${String(l.command)}`,
    'simulated boot: forgetting the token and the command log, looking up again': () => 'agent: simulated reboot, looking up again',
  };
  const text = interesting[line.msg]?.(line) ?? (line.level >= 50 ? `agent error: ${line.msg} ${String(line.err ?? '')}` : undefined);
  if (text) say(text);
}

say('starting a real Ironic (Debian python3-ironic) on 127.0.0.1');
const ironic = await Ironic.start({ automatedClean: false });
let agent: AgentProcess | undefined;
try {
  say(`Ironic API at ${ironic.url}`);
  const macs = (await listInterfaces({ run: runCommand, withAddresses: false })).map((i) => i.mac_address);
  const uuid = await ironic.enroll({ macs, deployInterface: 'custom-agent', name: 'demo-node' });
  say(`enrolled node ${uuid} (custom-agent deploy, ports ${macs.join(', ')}), now manageable`);

  agent = await AgentProcess.start({
    cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
    flags: ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1'],
  });
  const seen = new Set<LogLine>();
  const poll = setInterval(() => {
    for (const line of agent!.lines) if (!seen.has(line)) (seen.add(line), narrate(line));
  }, 50);
  await agent.waitForMessage('agent API listening');
  await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 30, 'first heartbeat');
  say('Ironic received the first heartbeat');

  for (const target of ['provide', 'active', 'deleted'] as const) {
    const t0 = performance.now();
    const node = await ironic.provision(uuid, target);
    say(`ironic: ${target} -> ${node?.provision_state} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  clearInterval(poll);
  say('done: the node went manageable -> available -> active -> available, driven only by Ironic');
} catch (err) {
  say(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  if (agent) process.stderr.write(`${agent.tail()}\n`);
  process.exitCode = 1;
} finally {
  await agent?.stop();
  await ironic.stop();
}
