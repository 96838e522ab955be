import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { loadPlugins } from '../../src/steps/plugins/loader.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { pluginDir, pluginSource } from '../helpers/plugin-dir.ts';

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuv';
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/**
 * `ironic-node-agent steps --plugins DIR --json` in its own Node process: plugins are
 * imported by Node itself there, as in the ramdisk (vitest would transform them first).
 */
async function stepsCommand(dirs: string[]): Promise<{ code: number; out: { problems: string[]; plugins: { file: string }[]; steps: Record<string, { step: string; provider: string; replaces: string[] }[]> } }> {
  const args = [CLI, 'steps', '--json', ...dirs.flatMap((d) => ['--plugins', d])];
  try {
    const { stdout } = await promisify(execFile)(process.execPath, args);
    return { code: 0, out: JSON.parse(stdout) };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, out: JSON.parse(e.stdout) };
  }
}

const OK_STEP = `{ step: 'ok', interface: 'deploy', deploy: { priority: 75 }, run: () => 'fine' }`;

describe('loading plugins: every refusal names the plugin, the step and the rule', () => {
  let dirs: { remove: () => Promise<void> }[] = [];
  afterAll(async () => {
    for (const d of dirs) await d.remove();
  });

  async function problemsOf(files: Record<string, string>) {
    const d = await pluginDir(files);
    dirs.push(d);
    const { code, out } = await stepsCommand([d.dir]);
    expect(code).toBe(out.problems.length > 0 ? 1 : 0);
    return { ...out, dir: d.dir };
  }

  test('a syntax error, with its line', async () => {
    const { problems, dir, plugins } = await problemsOf({ 'broken.ts': `export default {\n  name: 'b',,\n};\n` });
    expect(plugins).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^plugin ${dir}/broken.ts: syntax error at line 2: `));
  });

  test('TypeScript that Node cannot strip', async () => {
    const { problems } = await problemsOf({ 'enum.ts': `enum Color { Red }\nexport default { name: 'e', version: '1', steps: [Color] };\n` });
    expect(problems[0]).toMatch(/enum.ts: syntax error.*no enums, namespaces or parameter properties/);
  });

  test('a module that throws at load, imports something missing, or exports nothing', async () => {
    const { problems, dir } = await problemsOf({
      'a-throws.mjs': `throw new TypeError('no config here');\n`,
      'b-missing.js': `import './not-there.js';\nexport default {};\n`,
      'c-nothing.js': `export const x = 1;\n`,
    });
    expect(problems).toEqual([
      `plugin ${dir}/a-throws.mjs: throws while loading: TypeError: no config here`,
      expect.stringMatching(new RegExp(`^plugin ${dir}/b-missing.js: cannot be loaded: Cannot find module`)),
      `plugin ${dir}/c-nothing.js: exports no provider: add \`export default { name, version, steps: [...] }\``,
    ]);
  });

  test('rule breaks name the step; priorities 50 and 100 are refused', async () => {
    const { problems, dir } = await problemsOf({
      'p50.ts': pluginSource(`{ step: 'early', interface: 'deploy', deploy: { priority: 50 }, run: () => 1 }`, `name: 'p50', version: '1'`),
      'p100.ts': pluginSource(`{ step: 'late', interface: 'deploy', deploy: { priority: 100 }, run: () => 1 }`, `name: 'p100', version: '1'`),
      'dup.ts': pluginSource(`${OK_STEP}, ${OK_STEP}`, `name: 'dup', version: '1'`),
    });
    expect(problems).toEqual([
      `plugin ${dir}/dup.ts: step ok: duplicate step name "ok" (each step name may appear once per plugin)`,
      expect.stringMatching(new RegExp(`^plugin ${dir}/p100.ts: step late: deploy priority 100 is outside the in-band band: use 61-99`)),
      expect.stringMatching(new RegExp(`^plugin ${dir}/p50.ts: step early: deploy priority 50 is outside the in-band band`)),
    ]);
  });

  test('two plugins may not share a provider name, nor take a built-in one', async () => {
    const d = await pluginDir({ 'a.ts': pluginSource(OK_STEP, `name: 'same', version: '1'`), 'b.ts': pluginSource(OK_STEP, `name: 'same', version: '1'`) });
    dirs.push(d);
    const loaded = await loadPlugins({ dirs: [d.dir], stepTimeoutSeconds: 60, reservedNames: ['generic_hardware_manager'] });
    expect(loaded.plugins.map((p) => p.file)).toEqual([`${d.dir}/a.ts`]);
    expect(loaded.problems).toEqual([`plugin ${d.dir}/b.ts: provider name "same" is already used by ${d.dir}/a.ts`]);
    const g = await problemsOf({ 'g.ts': pluginSource(OK_STEP, `name: 'generic_hardware_manager', version: '1'`) });
    expect(g.problems).toEqual([`plugin ${g.dir}/g.ts: provider name "generic_hardware_manager" is already used by the agent itself`]);
  });

  test('a module whose top level never settles is refused after the import timeout', async () => {
    const d = await pluginDir({ 'hang.mjs': `await new Promise(() => setInterval(() => {}, 1000));\nexport default {};\n` });
    dirs.push(d);
    const loaded = await loadPlugins({ dirs: [d.dir], stepTimeoutSeconds: 60, importTimeoutSeconds: 0.5 });
    expect(loaded.problems).toEqual([`plugin ${d.dir}/hang.mjs: throws while loading: Error: its top-level code did not finish within 0.5 s`]);
  });

  test('a missing directory is a problem unless it is the ramdisk default', async () => {
    expect((await loadPlugins({ dirs: ['/nonexistent/ina-plugins'], stepTimeoutSeconds: 1 })).problems).toEqual([
      'plugin directory /nonexistent/ina-plugins: cannot be read (ENOENT)',
    ]);
    expect((await loadPlugins({ dirs: ['/usr/lib/ironic-node-agent/plugins'], stepTimeoutSeconds: 1 })).problems).toEqual([]);
  });
});

/** The plugin steps the agent tests below call. */
const AGENT_PLUGIN = `
const calls = [];
export default {
  name: 'acme', version: '2.0',
  steps: [
    { step: 'configure', interface: 'deploy', deploy: { priority: 80 }, clean: { priority: 0, abortable: true },
      argsinfo: { site: { description: 'site', required: true, type: 'string' }, size: { description: 'size', type: 'integer' } },
      run: async (args, ctx) => { calls.push(args); ctx.log.info({ args }, 'configure ran'); return { got: args, kind: ctx.kind, node: ctx.node?.uuid ?? null, calls: calls.length }; } },
    { step: 'explode', interface: 'deploy', deploy: { priority: 0 }, run: () => { throw new Error('the BMC said no'); } },
    { step: 'explode_later', interface: 'deploy', deploy: { priority: 0 }, run: async () => { await null; throw 'a bare string'; } },
    { step: 'hang', interface: 'deploy', deploy: { priority: 0 }, timeout: 1, run: (_a, ctx) => ctx.run('sleep', ['30']) },
    { step: 'cyclic', interface: 'deploy', service: { priority: 0 }, run: () => { const o = {}; o.o = o; return o; } },
    { step: 'reconfigure', interface: 'deploy', service: { priority: 0, abortable: true }, argsinfo: { level: { description: 'level', type: 'integer' } },
      run: async (args, ctx) => {
        for (let i = 1; i <= 3; i++) { ctx.setProgress({ done: i, of: 3 }); await new Promise((r) => setTimeout(r, 300)); }
        return { kind: ctx.kind, level: args.level ?? null };
      } },
    { step: 'erase_devices_metadata', interface: 'deploy', clean: { priority: 99, abortable: true }, run: () => 'plugin erase' },
  ],
};
`;

describe('plugin steps through the agent, over REST and JSON-RPC', () => {
  let api: Awaited<ReturnType<typeof startAgent>>;
  let dir: { dir: string; remove: () => Promise<void> };

  beforeAll(async () => {
    dir = await pluginDir({ 'acme.mjs': AGENT_PLUGIN });
    api = await startAgent({ flags: { 'agent-token': TOKEN, 'plugin-dir': [dir.dir] } });
  });
  afterAll(async () => {
    await api?.stop();
    await dir?.remove();
  });

  async function call(path: string, body: unknown) {
    const res = await request(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return (await res.body.json()) as Record<string, unknown>;
  }
  const post = (name: string, params: unknown) => call(`/v1/commands/?agent_token=${TOKEN}&wait=true`, { name, params });
  const execute = (step: string, args: Record<string, unknown> = {}, kind = 'deploy') =>
    post(`${kind}.execute_${kind}_step`, { step: { interface: 'deploy', step, args }, node: { uuid: 'node-1' }, ports: [] });

  test('get_deploy_steps offers the plugin under its name, with IPA argsinfo keys only', async () => {
    const r = await post('deploy.get_deploy_steps', { node: { uuid: 'node-1' }, ports: [] });
    const result = r.command_result as { deploy_steps: Record<string, unknown[]>; hardware_manager_version: Record<string, string> };
    expect(result.hardware_manager_version).toMatchObject({ generic_hardware_manager: '1.2', acme: '2.0' });
    expect(result.deploy_steps.acme).toContainEqual({
      step: 'configure', priority: 80, interface: 'deploy', reboot_requested: false,
      argsinfo: { site: { description: 'site', required: true }, size: { description: 'size' } },
    });
  });

  test('a step runs with its args and its result is echoed as IPA does', async () => {
    const r = await execute('configure', { site: 'fra1', size: 3 });
    expect(r).toMatchObject({
      command_name: 'execute_deploy_step',
      command_status: 'SUCCEEDED',
      command_result: {
        deploy_result: { got: { site: 'fra1', size: 3 }, kind: 'deploy', node: 'node-1' },
        deploy_step: { interface: 'deploy', step: 'configure', args: { site: 'fra1', size: 3 } },
      },
    });
  });

  test('JSON-RPC deploy.execute_deploy_step gives the same result as REST', async () => {
    const params = { step: { interface: 'deploy', step: 'configure', args: { site: 'ams2' } }, node: { uuid: 'node-1' }, ports: [] };
    const rest = await post('deploy.execute_deploy_step', params);
    const rpc = await call(`/v1/jsonrpc?agent_token=${TOKEN}&wait=true`, { jsonrpc: '2.0', id: 1, method: 'deploy.execute_deploy_step', params });
    const result = rpc.result as Record<string, unknown>;
    const strip = (o: Record<string, unknown>) => {
      const r = structuredClone(o) as { id?: string; command_result: { deploy_result: { calls?: number } } };
      delete r.id;
      delete r.command_result.deploy_result.calls;
      return r;
    };
    expect(strip(result)).toEqual(strip(rest));
    expect(result.command_status).toBe('SUCCEEDED');
  });

  test('missing, wrong-typed and unknown args fail the step before it runs', async () => {
    const before = api.logs().filter((l) => l.msg === 'configure ran').length;
    for (const [args, text] of [
      [{}, 'deploy step configure: missing required argument "site" (site)'],
      [{ site: 7 }, 'deploy step configure: argument "site" must be a string, got integer'],
      [{ site: 'x', colour: 'red' }, 'deploy step configure: unknown argument "colour" (accepted: site, size)'],
    ] as const) {
      const r = await execute('configure', args);
      expect(r.command_status).toBe('FAILED');
      expect(r.command_error).toEqual({ type: 'InvalidCommandParamsError', code: 400, message: 'Invalid command parameters', details: text });
    }
    expect(api.logs().filter((l) => l.msg === 'configure ran').length).toBe(before);
  });

  test('a plugin that throws fails the step with its message', async () => {
    expect((await execute('explode')).command_error).toEqual({
      type: 'DeploymentError', code: 500, message: 'Deploy step failed',
      details: 'Unexpected exception performing deploy step explode. Error: the BMC said no',
    });
    expect(((await execute('explode_later')).command_error as { details: string }).details).toBe(
      'Unexpected exception performing deploy step explode_later. Error: a bare string',
    );
  });

  test('a step past its timeout fails, its tool is killed, and the agent serves on', async () => {
    const r = await execute('hang');
    expect(r.command_status).toBe('FAILED');
    expect((r.command_error as { details: string }).details).toBe(`deploy step hang did not finish within its timeout of 1 s (plugin ${dir.dir}/acme.mjs)`);
    const after = await execute('configure', { site: 'still-here' });
    expect(after.command_status).toBe('SUCCEEDED');
  });

  test('a result that is not JSON fails the step instead of the API', async () => {
    const r = await execute('cyclic', {}, 'service');
    expect(r.command_error).toMatchObject({ type: 'ServicingError', details: expect.stringMatching(/^service step cyclic returned a value that cannot be sent as JSON/) });
  });

  test('an unknown step, or one not offered for the kind, is HardwareManagerMethodNotFound', async () => {
    expect((await execute('no_such_step')).command_error).toEqual({
      type: 'HardwareManagerMethodNotFound', code: 500, message: 'No HardwareManager found to handle method', details: 'Could not find method: no_such_step',
    });
    expect(((await execute('configure', { site: 'x' }, 'service')).command_error as { type: string }).type).toBe('HardwareManagerMethodNotFound');
  });

  test('service steps go through the same engine: versions checked, progress shown while Ironic polls, step echoed', async () => {
    const listed = await post('service.get_service_steps', { node: { uuid: 'node-1' }, ports: [] });
    const result = listed.command_result as { service_steps: Record<string, unknown[]>; hardware_manager_version: Record<string, string> };
    expect(result.service_steps.acme).toContainEqual({ step: 'reconfigure', priority: 0, interface: 'deploy', reboot_requested: false, abortable: true, argsinfo: { level: { description: 'level' } } });
    const params = {
      step: { interface: 'deploy', step: 'reconfigure', args: { level: 2 } }, node: { uuid: 'node-1' }, ports: [],
      service_version: result.hardware_manager_version,
    };
    const started = await call(`/v1/commands/?agent_token=${TOKEN}`, { name: 'service.execute_service_step', params });
    expect(started.command_status).toBe('RUNNING');
    let sawProgress = false;
    for (let i = 0; i < 50; i++) {
      const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}`);
      const last = ((await res.body.json()) as { commands: { command_status: string; command_result: unknown }[] }).commands.at(-1)!;
      if (last.command_status === 'RUNNING' && (last.command_result as { progress?: unknown } | null)?.progress) sawProgress = true;
      if (last.command_status !== 'RUNNING') {
        expect(last).toMatchObject({
          command_status: 'SUCCEEDED',
          command_result: { service_result: { kind: 'service', level: 2 }, service_step: { interface: 'deploy', step: 'reconfigure', args: { level: 2 } } },
        });
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sawProgress).toBe(true);
    const mismatch = await post('service.execute_service_step', { ...params, service_version: { acme: '1.0' } });
    expect(mismatch.command_status).toBe('CLEAN_VERSION_MISMATCH');
    expect(mismatch.command_error).toMatchObject({ type: 'VersionMismatch', code: 409 });
  });

  test('a plugin step replaces a built-in step of the same name (support level 3 beats GENERIC)', async () => {
    const r = await post('clean.get_clean_steps', { node: { uuid: 'node-1' }, ports: [] });
    const steps = (r.command_result as { clean_steps: Record<string, { step: string }[]> }).clean_steps;
    expect(steps.acme?.map((s) => s.step)).toContain('erase_devices_metadata');
    for (const [provider, list] of Object.entries(steps)) {
      if (provider !== 'acme') expect(list.map((s) => s.step)).not.toContain('erase_devices_metadata');
    }
    expect((await execute('erase_devices_metadata', {}, 'clean')).command_result).toMatchObject({ clean_result: 'plugin erase' });
  });
});

describe('a broken plugin blocks the steps, not the agent', () => {
  test('get_deploy_steps fails with the load problem; the API keeps answering', async () => {
    const dir = await pluginDir({ 'bad.ts': pluginSource(`{ step: 'x', interface: 'deploy', deploy: { priority: 50 }, run: () => 1 }`) });
    const api = await startAgent({ flags: { 'agent-token': TOKEN, 'plugin-dir': [dir.dir] } });
    try {
      const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'deploy.get_deploy_steps', params: { node: {}, ports: [] } }),
      });
      // An HTTP error, not a FAILED result: Ironic reads sync failures only from the status code.
      expect(res.statusCode).toBe(500);
      const r = (await res.body.json()) as Record<string, unknown>;
      expect(r.faultstring).toMatch(/^Hardware manager configuration error: operator plugins failed to load/);
      expect(r.faultstring).toContain(`plugin ${dir.dir}/bad.ts: step x: deploy priority 50 is outside the in-band band`);
      expect(api.logs().some((l) => l.msg === 'operator plugin refused')).toBe(true);
      expect((await request(`${api.url}/v1/status`)).statusCode).toBe(200);
    } finally {
      await api.stop();
      await dir.remove();
    }
  });
});

describe('a step that ignores its signal does not hold up a reboot', () => {
  test('stopping the agent fails the running step as interrupted and returns', async () => {
    const dir = await pluginDir({
      'stubborn.mjs': pluginSource(`{ step: 'stubborn', interface: 'deploy', deploy: { priority: 0 }, timeout: 3600, run: () => new Promise(() => {}) }`),
    });
    const api = await startAgent({ flags: { 'agent-token': TOKEN, 'plugin-dir': [dir.dir] } });
    try {
      const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'deploy.execute_deploy_step', params: { step: { interface: 'deploy', step: 'stubborn', args: {} }, node: {}, ports: [] } }),
      });
      expect(((await res.body.json()) as { command_status: string }).command_status).toBe('RUNNING');
      await api.agent.stop();
      const failed = api.logs().find((l) => l.msg === 'command failed');
      expect(failed).toMatchObject({ command: 'deploy.execute_deploy_step', status: 'FAILED' });
      expect(String(failed?.err)).toMatch(/deploy step stubborn was interrupted/);
    } finally {
      await api.stop();
      await dir.remove();
    }
  });
});

describe('the agent process survives what a plugin leaves behind', () => {
  test('an exception thrown later by a plugin\'s timer, or an unhandled rejection, is logged and the agent serves on', async () => {
    const { AgentProcess } = await import('../helpers/agent-process.ts');
    const dir = await pluginDir({
      'sloppy.mjs': pluginSource(
        `{ step: 'sloppy', interface: 'deploy', deploy: { priority: 0 }, run: () => { setTimeout(() => { throw new Error('late boom'); }, 20); Promise.reject(new Error('nobody catches me')); return 'returned'; } }`,
      ),
    });
    const agent = await AgentProcess.start({ flags: ['--agent-token', TOKEN, '--plugin-dir', dir.dir] });
    try {
      await agent.waitForMessage('agent API listening');
      const base = `http://127.0.0.1:${agent.port}`;
      const res = await request(`${base}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'deploy.execute_deploy_step', params: { step: { interface: 'deploy', step: 'sloppy' }, node: {}, ports: [] } }),
      });
      expect(((await res.body.json()) as { command_result: unknown }).command_result).toMatchObject({ deploy_result: 'returned' });
      await agent.waitForLog((l) => l.msg === 'uncaught exception' && String(l.err).includes('late boom'));
      await agent.waitForLog((l) => l.msg === 'unhandled rejection' && String(l.err).includes('nobody catches me'));
      expect((await request(`${base}/v1/status`)).statusCode).toBe(200);
    } finally {
      await agent.stop();
      await dir.remove();
    }
  });
});

describe('ironic-node-agent steps', () => {
  test('lists per kind, notes which built-in step a plugin replaces, exits 0 when all plugins load', async () => {
    const d = await pluginDir({ 'site.ts': pluginSource(`{ step: 'inject_files', interface: 'deploy', deploy: { priority: 90 }, run: () => 1 }`, `name: 'site', version: '3'`) });
    try {
      const { code, out } = await stepsCommand([d.dir]);
      expect(code).toBe(0);
      expect(out.plugins.map((p) => p.file)).toEqual([`${d.dir}/site.ts`]);
      expect(out.steps.deploy).toContainEqual(expect.objectContaining({ step: 'inject_files', provider: 'site', replaces: ['GenericHardwareManager'] }));
      expect(out.steps.service).toContainEqual(expect.objectContaining({ step: 'inject_files', provider: 'GenericHardwareManager', replaces: [] }));
    } finally {
      await d.remove();
    }
  });
});
