import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bundleAgent } from '../../image-build/bundle.ts';
import { AgentProcess } from '../helpers/agent-process.ts';

const run = promisify(execFile);

/** The single-file agent that goes into the ramdisk, with built-ins imported through require(). */
describe('the bundled agent', () => {
  let dir: string;
  let bundle: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-bundle-'));
    bundle = join(dir, 'agent.mjs');
    await bundleAgent(bundle);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('runs its CLI, and does not load Node\'s bundled undici at start', async () => {
    const { stdout } = await run(process.execPath, [bundle, 'version']);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    // Reading node:http's WebSocket getter is what loads undici; a preload reports whether anyone does.
    const spy = join(dir, 'spy.mjs');
    await writeFile(spy, `import { createRequire } from 'node:module';
const http = createRequire(import.meta.url)('node:http');
const d = Object.getOwnPropertyDescriptor(http, 'WebSocket');
Object.defineProperty(http, 'WebSocket', { configurable: true, enumerable: true, get() { process.stderr.write('WebSocket getter read\\n'); return d.get.call(http); } });
`);
    const spied = await run(process.execPath, ['--import', spy, bundle, 'version']);
    expect(spied.stdout.trim()).toBe(stdout.trim());
    expect(spied.stderr).not.toContain('WebSocket getter read');
    // The check can fail: the same spy sees an ES import of node:http.
    const esm = await run(process.execPath, ['--import', spy, '--input-type=module', '-e', "import 'node:http';"]);
    expect(esm.stderr).toContain('WebSocket getter read');
  });

  test('serves the command API standalone, without deprecation warnings from reading every export of a built-in', async () => {
    const agent = await AgentProcess.start({ entry: bundle });
    try {
      await agent.waitForMessage('agent API listening');
      const res = await request(`http://127.0.0.1:${agent.port}/v1/status`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ version: expect.any(String) });
      // crypto.fips and fs.F_OK are deprecated getters: reading them at start printed warnings.
      expect(agent.stderr.join('')).not.toContain('DeprecationWarning');
    } finally {
      await agent.stop();
    }
  });
});
