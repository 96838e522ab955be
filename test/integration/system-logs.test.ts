import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { collectSystemLogs } from '../../src/hardware/system-logs.ts';
import { runCommand } from '../../src/run.ts';
import { memoryLogger } from '../helpers/logger.ts';

describe('log.collect_system_logs bundle (spec §7.4)', () => {
  test('a tar.gz with the agent log and the diagnostic commands that exist here', async () => {
    const { log } = memoryLogger();
    const tgz = await collectSystemLogs({ run: runCommand, log, agentLog: '{"msg":"hello from the agent"}\n' });
    const dir = mkdtempSync(join(tmpdir(), 'ina-logs-'));
    writeFileSync(join(dir, 'logs.tgz'), tgz);
    const names = execFileSync('tar', ['-tzf', join(dir, 'logs.tgz')], { encoding: 'utf8' }).trim().split('\n');
    expect(names).toEqual(expect.arrayContaining(['ironic-node-agent.log', 'df', 'ip_addr', 'lsblk', 'lsblk-full', 'mount', 'ps']));
    execFileSync('tar', ['-xzf', join(dir, 'logs.tgz'), '-C', dir]);
    expect(readFileSync(join(dir, 'ironic-node-agent.log'), 'utf8')).toContain('hello from the agent');
    expect(readFileSync(join(dir, 'lsblk-full'), 'utf8')).toMatch(/NAME="/);
  });

  test('missing tools are skipped, not fatal', async () => {
    const { log } = memoryLogger();
    const run = async (file: string) => {
      if (file === 'df') return 'Filesystem 1K-blocks\n';
      throw new Error(`${file} is not installed`);
    };
    const tgz = await collectSystemLogs({ run, log, agentLog: '' });
    const dir = mkdtempSync(join(tmpdir(), 'ina-logs-'));
    writeFileSync(join(dir, 'l.tgz'), tgz);
    const names = execFileSync('tar', ['-tzf', join(dir, 'l.tgz')], { encoding: 'utf8' }).trim().split('\n');
    expect(names).toContain('df');
    expect(names).not.toContain('dmesg');
  });
});
