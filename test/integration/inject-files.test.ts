import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync, statSync, existsSync, lstatSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice, sh } from '../helpers/loop.ts';
import { stepContext } from '../helpers/erase-context.ts';
import { runCommand, type RunCommand } from '../../src/run.ts';
import { injectFilesSteps } from '../../src/steps/inject-files/step.ts';

const canRun = prerequisite('root (loop devices, mount)', isRoot);
const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuv';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Mounts a partition read-only for the duration of `fn`, to look at what the step wrote. */
function inspect<T>(partition: string, fn: (root: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'ina-inspect-'));
  execFileSync('mount', ['-o', 'ro', partition, dir]);
  try {
    return fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  }
}

function withMounted(partition: string, fn: (root: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'ina-prepare-'));
  execFileSync('mount', [partition, dir]);
  try {
    fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  }
}

const ourMounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('ina-inject-'));

describe.skipIf(!canRun)('inject_files on a loop device (spec §8.4.1)', () => {
  let disk: LoopDevice;
  let other: LoopDevice;
  let api: Awaited<ReturnType<typeof startAgent>>;
  let server: Server;
  let serverUrl: string;
  const requested: string[] = [];

  beforeAll(async () => {
    disk = await LoopDevice.create(96 * 2 ** 20);
    sh('sgdisk', ['-n', '1:0:+32M', '-n', '2:0:+32M', '-n', '3:0:+8M', disk.path]);
    disk.scanPartitions();
    sh('mkfs.ext4', ['-q', '-L', 'boot', disk.partition(1)]);
    sh('mkfs.ext4', ['-q', '-L', 'root', disk.partition(2)]);
    withMounted(disk.partition(1), (root) => execFileSync('ln', ['-s', '/tmp', join(root, 'escape')]));
    withMounted(disk.partition(2), (root) => {
      execFileSync('mkdir', ['-p', join(root, 'etc/ssh')]);
      writeFileSync(join(root, 'etc/old.conf'), 'old');
      execFileSync('ln', ['-s', '/etc/passwd', join(root, 'etc/passwd-link')]);
      // A FIFO in the image: opening it for writing would block until a reader comes, forever.
      execFileSync('mkfifo', [join(root, 'etc/fifo')]);
    });
    other = await LoopDevice.create(16 * 2 ** 20);
    sh('sgdisk', ['-n', '1:0:0', other.path]);
    other.scanPartitions();

    server = createServer((req, res) => {
      requested.push(req.url ?? '');
      if (req.url?.startsWith('/moved')) {
        res.writeHead(302, { location: req.url.replace('/moved', '/motd') }).end('<html>Found</html>');
        return;
      }
      if (req.url?.startsWith('/missing')) {
        res.writeHead(404).end('no');
        return;
      }
      res.end(`served ${req.url}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    api = await startAgent({ flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] } });
  });

  afterAll(async () => {
    await api?.stop();
    server?.close();
    await disk?.destroy();
    await other?.destroy();
  });

  async function inject(files: unknown[], extra: Record<string, unknown> = {}, properties: Record<string, unknown> = {}) {
    const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'deploy.execute_deploy_step',
        params: {
          step: { interface: 'deploy', step: 'inject_files', args: { files, ...extra } },
          node: { uuid: 'node-7', properties: { root_device: { name: disk.path }, ...properties }, instance_info: {} },
          ports: [{ address: '52:54:00:aa:bb:cc' }],
        },
      }),
    });
    return (await res.body.json()) as { command_status: string; command_result: { deploy_result: { injected: unknown[] } }; command_error: { type: string; details: string } | null };
  }

  test('is offered at priority 0 as a deploy and a service step', async () => {
    const res = await request(`${api.url}/v1/commands/?agent_token=${TOKEN}&wait=true`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'service.get_service_steps', params: { node: {}, ports: [] } }),
    });
    const steps = ((await res.body.json()) as { command_result: { service_steps: Record<string, { step: string; priority: number }[]> } }).command_result.service_steps;
    expect(steps.GenericHardwareManager).toContainEqual(expect.objectContaining({ step: 'inject_files', priority: 0, argsinfo: expect.any(Object) }));
  });

  test('writes files by partition number and by search, with mode, owner, group and dirmode', async () => {
    const r = await inject(
      [
        { path: '/etc/ssh/sshd_config.d/10-site.conf', content: b64('PermitRootLogin no\n'), mode: 0o600, owner: 1000, group: 1001, dirmode: 0o750 },
        { path: '/grub/custom.cfg', partition: 1, content: b64('set timeout=1\n') },
        { path: '/etc/old.conf', deleted: true },
        { path: '/etc/site/conf.d/x.conf', content: b64('x'), dirmode: 0o700 },
      ],
      {},
      { inject_files: [{ path: '/etc/hostname', content: b64('node-7\n') }] },
    );
    expect(r.command_error).toBeNull();
    expect(r.command_result.deploy_result.injected).toEqual([
      { path: '/etc/hostname', partition: disk.partition(2), action: 'written' },
      { path: '/etc/ssh/sshd_config.d/10-site.conf', partition: disk.partition(2), action: 'written' },
      { path: '/grub/custom.cfg', partition: disk.partition(1), action: 'written' },
      { path: '/etc/old.conf', partition: disk.partition(2), action: 'deleted' },
      { path: '/etc/site/conf.d/x.conf', partition: disk.partition(2), action: 'written' },
    ]);
    inspect(disk.partition(2), (root) => {
      expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('node-7\n');
      const conf = statSync(join(root, 'etc/ssh/sshd_config.d/10-site.conf'));
      expect([conf.mode & 0o7777, conf.uid, conf.gid]).toEqual([0o600, 1000, 1001]);
      expect(statSync(join(root, 'etc/ssh/sshd_config.d')).mode & 0o7777).toBe(0o750);
      expect(existsSync(join(root, 'etc/old.conf'))).toBe(false);
      // dirmode is for the file's own directory; directories above it get 0755 (IPA's makedirs).
      expect(statSync(join(root, 'etc/site')).mode & 0o7777).toBe(0o755);
      expect(statSync(join(root, 'etc/site/conf.d')).mode & 0o7777).toBe(0o700);
      expect(statSync(join(root, 'etc/hostname')).mode & 0o7777).toBe(0o644);
    });
    inspect(disk.partition(1), (root) => expect(readFileSync(join(root, 'grub/custom.cfg'), 'utf8')).toBe('set timeout=1\n'));
    expect(ourMounts()).toEqual([]);
  });

  test('content from a URL with {node[...]} and {ports[...]} fields', async () => {
    const r = await inject([{ path: '/etc/motd', content: `${serverUrl}/motd/{node[uuid]}/{ports[0][address]}` }]);
    expect(r.command_error).toBeNull();
    expect(requested).toContain('/motd/node-7/52%3A54%3A00%3Aaa%3Abb%3Acc');
    inspect(disk.partition(2), (root) => expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('served /motd/node-7/52%3A54%3A00%3Aaa%3Abb%3Acc'));
  });

  test('content from a URL that redirects: the file gets the target, not the redirect page', async () => {
    const r = await inject([{ path: '/etc/motd', content: `${serverUrl}/moved/x` }]);
    expect(r.command_error).toBeNull();
    inspect(disk.partition(2), (root) => expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('served /motd/x'));
  });

  test('refuses to follow a symlink out of the partition, and leaves nothing mounted', async () => {
    const r = await inject([{ path: '/escape/pwned', partition: 1, content: b64('x') }]);
    expect(r.command_error?.details).toBe(`inject_files: /escape is a symlink on partition 1 (${disk.partition(1)}); refusing to follow it for /escape/pwned`);
    expect(existsSync('/tmp/pwned')).toBe(false);
    const link = await inject([{ path: '/etc/passwd-link', content: b64('x') }]);
    expect(link.command_error?.details).toBe(`inject_files: /etc/passwd-link is a symlink on partition 2 (${disk.partition(2)}); refusing to write through it`);
    inspect(disk.partition(2), (root) => expect(lstatSync(join(root, 'etc/passwd-link')).isSymbolicLink()).toBe(true));
    expect(ourMounts()).toEqual([]);
  });

  test('refuses to write into a FIFO on the target instead of hanging, and leaves nothing mounted', { timeout: 60_000 }, async () => {
    const r = await inject([{ path: '/etc/fifo', content: b64('x') }]);
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error?.details).toBe(`inject_files: /etc/fifo on partition 2 (${disk.partition(2)}) is not a regular file; refusing to write into it`);
    expect(ourMounts()).toEqual([]);
  });

  test('bad input: each gives a clear error and no disk is touched', async () => {
    const cases: [unknown[], Record<string, unknown>, string, RegExp | string][] = [
      [[{ path: '/etc/../../x', content: b64('x') }], {}, 'InvalidCommandParamsError', /contains "\.\.": refusing a path that could escape the partition/],
      [[{ path: 'etc/x', content: b64('x') }], {}, 'InvalidCommandParamsError', /files\[0\]\.path: must be an absolute path/],
      [[{ path: '/etc/x', content: b64('x'), mode: '0644' }], {}, 'InvalidCommandParamsError', /files\[0\]\.mode: /],
      [[{ path: '/etc/x', content: b64('x'), owner: 1.5 }], {}, 'InvalidCommandParamsError', /files\[0\]\.owner: /],
      [[{ path: '/etc/x' }], {}, 'InvalidCommandParamsError', /needs "content"/],
      [[{ path: '/etc/x', content: 'not base64!' }], {}, 'InvalidCommandParamsError', /neither base64 nor an http\(s\) URL/],
      [[{ path: '/etc/x', content: b64('x'), colour: 1 }], {}, 'InvalidCommandParamsError', /Unrecognized key/],
      [[{ path: '/x', content: b64('x') }], {}, 'DeploymentError', /\/x is directly in \/, so it needs an explicit "partition"/],
      [[{ path: '/nowhere/x', content: b64('x') }], {}, 'DeploymentError', /no partition of .* has a \/nowhere directory/],
      [[{ path: '/x', partition: 9, content: b64('x') }], {}, 'DeploymentError', /partition 9 does not exist on the root device .* \(it has 1, 2, 3\)/],
      [[{ path: '/x', partition: 3, content: b64('x') }], {}, 'DeploymentError', /partition .*p3 has no filesystem to write \/x into \(none found\)/],
      [[{ path: '/x', partition: 'p1', content: b64('x') }], {}, 'InvalidCommandParamsError', /must be a partition number or a \/dev path/],
      [[{ path: '/etc/x', content: `${serverUrl}/missing` }], {}, 'DeploymentError', /cannot fetch .*\/missing: HTTP 404/],
      [[{ path: '/etc/x', content: `${serverUrl}/{node[nope]}` }], {}, 'InvalidCommandParamsError', /names \{node\[nope\]\}/],
      [[{ path: '/etc/x', content: b64('x') }], { verify_ca: 'yes' }, 'InvalidCommandParamsError', /verify_ca must be true, false or the path of a CA bundle/],
      ['not a list' as unknown as unknown[], {}, 'InvalidCommandParamsError', /argument "files" must be a list/],
    ];
    for (const [files, extra, type, message] of cases) {
      const r = await inject(files, extra);
      expect(r.command_status, JSON.stringify(files)).toBe('FAILED');
      expect(r.command_error?.type, JSON.stringify(files)).toBe(type);
      expect(r.command_error?.details, JSON.stringify(files)).toMatch(message);
    }
    const r = await inject([{ path: '/x', partition: other.partition(1), content: b64('x') }]);
    expect(r.command_error?.details).toBe(`inject_files: files[0]: ${other.partition(1)} is not a partition of the root device ${disk.path}`);
    expect(ourMounts()).toEqual([]);
  });

  test('a mounted root device is refused by the disk guard', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ina-busy-'));
    execFileSync('mount', ['-o', 'ro', disk.partition(2), dir]);
    try {
      const r = await inject([{ path: '/etc/x', content: b64('x') }]);
      expect(r.command_error).toMatchObject({ type: 'UnsafeDeviceError', details: expect.stringMatching(/has a mounted filesystem/) });
    } finally {
      execFileSync('umount', [dir]);
      rmdirSync(dir);
    }
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith('ina-inject-'))).toEqual([]);
  });
});

describe.skipIf(!canRun)('inject_files interrupted (the machine goes down, or the step times out)', () => {
  let disk: LoopDevice;

  beforeAll(async () => {
    disk = await LoopDevice.create(48 * 2 ** 20);
    sh('sgdisk', ['-n', '1:0:0', disk.path]);
    disk.scanPartitions();
    sh('mkfs.ext4', ['-q', disk.partition(1)]);
  });

  afterAll(async () => {
    for (const line of ourMounts()) {
      const dir = line.split(' ')[4];
      if (dir) execFileSync('umount', [dir]);
    }
    await disk?.destroy();
  });

  test('still unmounts what it mounted: the step signal kills new tools, not the cleanup', async () => {
    const abort = new AbortController();
    // As the engine does: every tool of the step gets the step's signal unless it says otherwise.
    const run: RunCommand = async (file, args, opts) => {
      const out = await runCommand(file, args, { signal: abort.signal, ...opts });
      if (file === 'mount') abort.abort(new Error('the machine goes down'));
      return out;
    };
    const { ctx } = stepContext([disk.path], { run });
    const node = { uuid: 'node-8', properties: { root_device: { name: disk.path } } };
    ctx.conductor.cacheNode(node);
    const step = injectFilesSteps.find((s) => s.step === 'inject_files')!;
    const stepCtx = Object.assign(Object.create(ctx) as typeof ctx, { signal: abort.signal });
    const files = [
      { path: '/a', partition: 1, content: b64('a') },
      { path: '/b', partition: 1, content: b64('b') },
    ];
    await expect(step.run({ args: { files }, node, ports: [], kind: 'deploy' }, stepCtx)).rejects.toThrow(/machine goes down/);
    expect(ourMounts()).toEqual([]);
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith('ina-inject-'))).toEqual([]);
  });
});
