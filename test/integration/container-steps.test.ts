import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { PODMAN_TOOLS, PodmanSandbox } from '../helpers/podman.ts';

const canRun = prerequisite('root, podman, docker-registry and busybox-static', isRoot && PODMAN_TOOLS.every(hasTool));
const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuv';

describe.skipIf(!canRun)('container steps with real podman and a local registry (spec §8.4)', () => {
  let pod: PodmanSandbox;
  let api: Awaited<ReturnType<typeof startAgent>>;
  let out: string;
  let stepsFile: string;
  let marker: string;
  let failing: string;
  let other: string;

  beforeAll(async () => {
    pod = await PodmanSandbox.create();
    pod.apply();
    out = join(pod.dir, 'out');
    mkdirSync(out);
    marker = pod.buildImage('marker', 'echo "ran $(cat /proc/self/cgroup >/dev/null; echo ok)" > /out/ran');
    failing = pod.buildImage('failing', 'echo "firmware flash failed" >&2; exit 3');
    other = pod.buildImage('other', 'echo other > /out/other');
    stepsFile = join(pod.dir, 'container-steps.yaml');
    writeFileSync(stepsFile, [
      'steps:',
      '  - name: flash_firmware',
      `    image: ${marker}`,
      '    priority: 40',
      '    interface: deploy',
      '    reboot_requested: false',
      '    abortable: true',
      `    run_options: "--rm --network=host -v ${out}:/out"`,
      '',
    ].join('\n'));
    api = await startAgent({
      flags: {
        'agent-token': TOKEN,
        'allowed-containers': [`docker://${marker}`, failing],
        'container-steps-file': stepsFile,
        'container-run-options': `--rm --network=host -v ${out}:/out`,
      },
    });
  }, 120_000);

  afterAll(async () => {
    await api?.stop();
    await pod?.destroy();
  });

  async function post(name: string, params: unknown) {
    const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, params }),
    });
    return (await res.body.json()) as { command_status: string; command_result: Record<string, unknown>; command_error: { type: string; details: string } | null };
  }
  const execute = (kind: string, step: string, args: Record<string, unknown> = {}) =>
    post(`${kind}.execute_${kind}_step`, { step: { interface: 'deploy', step, args }, node: { uuid: 'n' }, ports: [] });

  test('the container manager offers its steps; the file\'s priority counts only for cleaning', async () => {
    const clean = (await post('clean.get_clean_steps', { node: {}, ports: [] })).command_result;
    expect(clean.hardware_manager_version).toMatchObject({ ContainerHardwareManager: '2' });
    const steps = (clean.clean_steps as Record<string, { step: string; priority: number }[]>).ContainerHardwareManager!;
    expect(steps.map((s) => [s.step, s.priority])).toEqual([['generic_container_step', 0], ['container_clean_step', 0], ['flash_firmware', 40]]);
    const deploy = (await post('deploy.get_deploy_steps', { node: {}, ports: [] })).command_result;
    expect((deploy.deploy_steps as Record<string, { step: string; priority: number }[]>).ContainerHardwareManager).toContainEqual(
      expect.objectContaining({ step: 'flash_firmware', priority: 0 }),
    );
  });

  test('an allowed image named in the arguments is pulled and run with the configured options', async () => {
    rmSync(join(out, 'ran'), { force: true });
    const r = await execute('clean', 'generic_container_step', { container_url: marker });
    expect(r.command_error).toBeNull();
    expect(readFileSync(join(out, 'ran'), 'utf8')).toBe('ran ok\n');
  });

  test('an image that is not allowed is refused before anything is pulled', async () => {
    const r = await execute('deploy', 'generic_container_step', { container_url: other });
    expect(r.command_error).toEqual({
      type: 'ContainerNotPermittedError', code: 403, message: 'Container image not permitted',
      details: `Container image ${other} is not in the allowed containers list`,
    });
    expect(existsSync(join(out, 'other'))).toBe(false);
    expect(pod.podman(['images', '--format', '{{.Repository}}'])).not.toContain('test/other');
  });

  test('a caller who may not choose the image may not choose the options either', async () => {
    rmSync(join(out, 'ran'), { force: true });
    const r = await execute('service', 'container_clean_step', { container_url: marker, run_options: ['--rm', '--network=host', '-v', '/:/host'] });
    expect(r.command_error).toBeNull();
    expect(existsSync(join(out, 'ran'))).toBe(true);
    expect(api.logs().some((l) => String(l.msg).startsWith('ignoring pull_options/run_options from step arguments'))).toBe(true);
  });

  test('a steps-file step is trusted and runs with its own options', async () => {
    rmSync(join(out, 'ran'), { force: true });
    const r = await execute('clean', 'flash_firmware');
    expect(r.command_error).toBeNull();
    expect(existsSync(join(out, 'ran'))).toBe(true);
  });

  test('a container that fails fails the step with its message', async () => {
    const r = await execute('clean', 'generic_container_step', { container_url: failing });
    expect(r.command_error?.type).toBe('CleaningError');
    expect(r.command_error?.details).toMatch(/^Unexpected exception performing clean step generic_container_step\. ToolError: podman run .* exited with 3: firmware flash failed/);
  });

  test('missing container_url is refused before podman runs', async () => {
    expect((await execute('clean', 'generic_container_step')).command_error).toMatchObject({
      type: 'InvalidCommandParamsError', details: 'clean step generic_container_step: missing required argument "container_url" (Container image URL)',
    });
  });

  test('a broken steps file, or one that shadows another step, fails get_*_steps with the reason', async () => {
    const saved = readFileSync(stepsFile, 'utf8');
    try {
      writeFileSync(stepsFile, 'steps:\n  - name: flash\n    image: x\n    interface: deploy\n');
      let r = await post('clean.get_clean_steps', { node: {}, ports: [] });
      expect(r.command_error?.type).toBe('HardwareManagerConfigurationError');
      expect(r.command_error?.details).toMatch(/container steps file .*: step flash: "priority" /);
      writeFileSync(stepsFile, 'steps:\n  - {name: inject_files, image: x, priority: 0, interface: deploy, reboot_requested: false, abortable: false}\n');
      r = await post('service.get_service_steps', { node: {}, ports: [] });
      expect(r.command_error?.details).toMatch(/step inject_files would shadow a step of the same name/);
      writeFileSync(stepsFile, 'steps: [unclosed');
      r = await post('deploy.get_deploy_steps', { node: {}, ports: [] });
      expect(r.command_error?.details).toMatch(/not valid YAML/);
    } finally {
      writeFileSync(stepsFile, saved);
    }
    expect((await post('clean.get_clean_steps', { node: {}, ports: [] })).command_status).toBe('SUCCEEDED');
  });

  test('registry credentials and secret env values in the options are never logged or sent back', async () => {
    const conductor = api.agent.context.conductor;
    conductor.settings = {
      heartbeatTimeout: 300,
      agentContainers: { allowed_containers: [`${pod.registry}/test/absent:1`], pull_options: '--creds robot:pull-s3cr3t', run_options: '--rm -e BMC_PASSWORD=run-s3cr3t' },
    };
    try {
      const before = api.logs().length;
      const r = await execute('clean', 'generic_container_step', { container_url: `${pod.registry}/test/absent:1` });
      expect(r.command_status).toBe('FAILED');
      expect(r.command_error?.details).toMatch(/podman pull --creds \*\*\* /);
      const shown = JSON.stringify([r, api.logs().slice(before)]);
      expect(shown).toContain('running a container step');
      expect(shown).not.toContain('s3cr3t');
    } finally {
      conductor.settings = undefined;
    }
  });

  test('agent_containers from Ironic\'s lookup override the options; bad values are ignored', async () => {
    const conductor = api.agent.context.conductor;
    conductor.settings = { heartbeatTimeout: 300, agentContainers: { allowed_containers: [other], runner: 'no-such-runner', bogus: 1 } };
    try {
      rmSync(join(out, 'other'), { force: true });
      const r = await execute('clean', 'generic_container_step', { container_url: other });
      expect(r.command_error).toBeNull();
      expect(readFileSync(join(out, 'other'), 'utf8')).toBe('other\n');
      expect((await execute('clean', 'generic_container_step', { container_url: marker })).command_error?.type).toBe('ContainerNotPermittedError');
      expect(api.logs().filter((l) => l.key === 'runner' || l.key === 'bogus').map((l) => l.msg)).toEqual(
        expect.arrayContaining(['ignoring an agent_containers value of the wrong type', 'ignoring an unknown agent_containers key']),
      );
    } finally {
      conductor.settings = undefined;
    }
  });
});
