import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentOptions } from '../../src/agent.ts';
import { resolveConfig, type FlagValues } from '../../src/config.ts';
import { memoryLogger } from './logger.ts';
import { freePort } from './ports.ts';

/** A real Agent in this process, listening on 127.0.0.1 on a free port. */
export async function startAgent(
  opts: { flags?: FlagValues; cmdline?: Map<string, string> } & Partial<Omit<AgentOptions, 'config' | 'log' | 'logRing'>> = {},
) {
  const port = await freePort();
  const stateDir = await mkdtemp(join(tmpdir(), 'ina-state-'));
  const config = resolveConfig({
    kernelParams: opts.cmdline ?? new Map(),
    flags: { 'listen-host': '127.0.0.1', 'listen-port': String(port), 'advertise-port': String(port), 'state-dir': stateDir, ...opts.flags },
  });
  const logger = memoryLogger();
  const agent = new Agent({ ...opts, config, log: logger.log, logRing: logger.ring });
  const running = agent.run();
  running.catch(() => undefined);
  await Promise.race([agent.ready, running]);
  return {
    agent,
    port,
    logs: logger.lines,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      await agent.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
