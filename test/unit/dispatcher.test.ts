import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import type { AgentContext } from '../../src/agent-context.ts';
import { CommandDispatcher } from '../../src/api/dispatcher.ts';
import { command } from '../../src/extensions/types.ts';
import { memoryLogger } from '../helpers/logger.ts';

describe('dispatcher reset (the machine went down)', () => {
  test('aborts running commands, waits for them to stop, then forgets the command log', async () => {
    const events: string[] = [];
    const ext = {
      name: 't',
      commands: {
        long: command('async', z.looseObject({}), async (_p, ctx) => {
          events.push('started');
          await new Promise<void>((_resolve, reject) => ctx.signal.addEventListener('abort', () => setTimeout(() => reject(ctx.signal.reason), 50)));
        }),
        quick: command('sync', z.looseObject({}), async () => 'ok'),
      },
    };
    const finished: string[] = [];
    const d = new CommandDispatcher([ext], { log: memoryLogger().log } as unknown as AgentContext, {
      asyncFinished: (r) => finished.push(`${r.name}:${r.status}`),
    });
    const record = await d.execute('t.long', {});
    expect(record.status).toBe('RUNNING');
    await expect(d.execute('t.quick', {})).rejects.toThrow('Agent is busy');
    await d.reset('simulated reboot');
    // reset returned only after the command had stopped
    expect(finished).toEqual(['long:FAILED']);
    expect(record.error?.details).toBe('simulated reboot');
    expect(d.log.list()).toEqual([]);
    // a fresh boot accepts commands again, with a fresh signal
    expect((await d.execute('t.quick', {})).status).toBe('SUCCEEDED');
  });
});
