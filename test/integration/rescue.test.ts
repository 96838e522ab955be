import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { verifyShaCrypt } from '../../src/rescue/sha-crypt.ts';
import { agentApiAnswers, agentCommands } from '../helpers/agent-commands.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { FakeIronic, ROOT_1_82, lookupAnswer, type Reply } from '../helpers/fake-ironic.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

const TOKEN = 'r'.repeat(43);
const SHADOW = 'root:*:19000:0:99999:7:::\nrescue:!:19000:0:99999:7:::\n';

/** A conductor whose lookup answers are the test's to change (a real Ironic runs in test/e2e). */
async function conductor(lookup: () => Reply = () => lookupAnswer('node-1', TOKEN)) {
  const state = { lookup };
  const fake = new FakeIronic((r) => {
    if (r.path === '/') return ROOT_1_82;
    if (r.path.startsWith('/v1/lookup')) return state.lookup();
    if (r.path.startsWith('/v1/heartbeat/')) return { status: 202 };
    return { status: 404 };
  });
  const url = await fake.start();
  cleanup.push(() => fake.stop());
  const heartbeats = () => fake.requests.filter((r) => r.path.startsWith('/v1/heartbeat/'));
  return { fake, url, state, heartbeats };
}

async function start(url: string, flags: string[] = []): Promise<AgentProcess> {
  const a = await AgentProcess.start({
    cmdline: `ipa-api-url=${url} ipa-lookup-interval=0.1`,
    flags: ['--no-enable-auto-tls', '--heartbeat-min-interval', '1', '--lookup-max-interval', '0.2', ...flags],
  });
  cleanup.push(() => a.stop());
  return a;
}

/** As the conductor sends it: with the token, waiting for the (sync) result. */
const finalize = (a: AgentProcess, params: unknown) => agentCommands(`http://127.0.0.1:${a.port}`, TOKEN).post('rescue.finalize_rescue', params, true);

const apiAnswers = (a: AgentProcess) => agentApiAnswers(`http://127.0.0.1:${a.port}`);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await delay(50);
  }
}

describe('rescue.finalize_rescue through the agent process', () => {
  test('a real ramdisk\'s rescue: password hashed and set, then no API and no heartbeat, and the process stays up', async () => {
    const { url, heartbeats } = await conductor();
    const shadowDir = join(await tempDir(), 'etc');
    mkdirSync(shadowDir, { recursive: true });
    const shadow = join(shadowDir, 'shadow');
    writeFileSync(shadow, SHADOW, { mode: 0o640 });
    // No --simulate-power: finalize_rescue touches no hardware, so the real behaviour runs here.
    const a = await start(url, ['--rescue-shadow-file', shadow]);
    await a.waitForMessage('agent API listening');
    await until('a heartbeat', () => heartbeats().length > 0);

    const answer = await finalize(a, { rescue_password: 'open sesame', hashed: false });
    expect(answer).toMatchObject({ status: 200, body: { command_name: 'finalize_rescue', command_status: 'SUCCEEDED', command_result: null } });
    const passwordFile = join(a.directory, 'rescue', 'ipa-rescue-password');
    const hash = readFileSync(passwordFile, 'utf8');
    expect(verifyShaCrypt('open sesame', hash)).toBe(true);
    expect(readFileSync(shadow, 'utf8').split('\n')[1]!.split(':')[1]).toBe(hash);
    expect(existsSync(join(a.directory, 'rescue', 'rescued'))).toBe(true);

    await a.waitForMessage('rescue finalized: the API and the heartbeat are stopped for good');
    expect(await apiAnswers(a)).toBe(false);
    const beats = heartbeats().length;
    await delay(2500);
    expect(heartbeats().length).toBe(beats);
    // IPA sleeps forever: exiting would let the service manager start a serving agent again.
    expect(await processAlive(a)).toBe(true);
  });

  test('an agent that starts in a rescued ramdisk looks up, then serves nothing', async () => {
    const { url, fake, heartbeats } = await conductor();
    const marker = join(await tempDir(), 'rescued');
    writeFileSync(marker, '');
    const a = await start(url, ['--rescue-marker-file', marker]);
    await a.waitForMessage('this ramdisk was rescued: not serving the API and not heartbeating');
    expect(fake.requests.some((r) => r.path.startsWith('/v1/lookup'))).toBe(true);
    await delay(1500);
    expect(heartbeats()).toHaveLength(0);
    expect(await apiAnswers(a)).toBe(false);
    expect(await processAlive(a)).toBe(true);
  });

  test('bad input: a hashed password with a separator is 400; a shadow without the user fails; the agent keeps serving', async () => {
    const { url } = await conductor();
    const shadow = join(await tempDir(), 'shadow');
    writeFileSync(shadow, 'root:*:1::::::\n');
    const a = await start(url, ['--rescue-shadow-file', shadow]);
    await a.waitForMessage('agent API listening');

    const forged = await finalize(a, { rescue_password: '$5$x$y:0:0:99999:7:::\nroot:', hashed: true });
    expect(forged.status).toBe(400);
    expect(forged.body.faultstring).toContain('a hashed rescue_password cannot contain ":" or a line break');

    const failed = await finalize(a, { rescue_password: 'pw', hashed: false });
    expect(failed.body).toMatchObject({
      command_status: 'FAILED',
      command_error: { type: 'CommandExecutionError', details: `Rescue Operation failed when setting the password of user rescue: user rescue not found in ${shadow}` },
    });
    expect(existsSync(join(a.directory, 'rescue', 'rescued'))).toBe(false);
    expect(readFileSync(shadow, 'utf8')).toBe('root:*:1::::::\n');
    await delay(500);
    expect(await apiAnswers(a)).toBe(true);
  });

  test('--simulate-power: the rescued agent is silent until Ironic issues a new token, then boots as a fresh ramdisk', async () => {
    const { url, state, heartbeats } = await conductor();
    const a = await start(url, ['--simulate-power']);
    await a.waitForMessage('agent API listening');
    expect((await finalize(a, { rescue_password: '$5$salt$hash', hashed: true })).body.command_status).toBe('SUCCEEDED');
    const marker = join(a.directory, 'rescue', 'rescued');
    await a.waitForMessage('rescue finalized: the API and the heartbeat are stopped for good');
    // Rescue is over on the conductor (the node is in "rescue"): lookup is a 404 there.
    state.lookup = () => ({ status: 404, body: { error_message: '{"faultstring": "Not found"}' } });
    const beats = heartbeats().length;
    await delay(2500);
    expect(heartbeats().length).toBe(beats);
    expect(await apiAnswers(a)).toBe(false);
    // The masked token of a node still in "rescue wait" is no reboot.
    state.lookup = () => lookupAnswer('node-1', '******');
    await delay(2500);
    expect(await apiAnswers(a)).toBe(false);
    expect(existsSync(marker)).toBe(true);

    const fresh = 'n'.repeat(43);
    state.lookup = () => lookupAnswer('node-1', fresh);
    await a.waitForMessage('simulation: Ironic issued a new token, the rescued node was rebooted');
    await until('the API again', () => apiAnswers(a));
    await until('a heartbeat with the new token', () => heartbeats().some((r) => JSON.parse(r.body).agent_token === fresh));
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(a.directory, 'rescue', 'ipa-rescue-password'))).toBe(false);
  });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ina-rescue-'));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** Not exited: the exit promise is still pending after a moment. */
async function processAlive(a: AgentProcess): Promise<boolean> {
  return !(await Promise.race([a.wait().then(() => true), delay(100).then(() => false)]));
}
