import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentCommands, type CommandStatus } from '../helpers/agent-commands.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { BOOTC_TOOLS, BootcSandbox, REGISTRY_PASSWORD, REGISTRY_USER } from '../helpers/bootc-registry.ts';
import { fileContains, installedDeployment, makeConfigDrive, partitionTable, probe, rescan, testKeys, withMounted } from '../helpers/bootc-layout.ts';
import { hashRange } from '../helpers/disk-images.ts';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { startAgent } from '../helpers/in-process-agent.ts';
import { LoopDevice } from '../helpers/loop.ts';

const canRun = prerequisite('root, podman, docker-registry, skopeo, htpasswd, openssl, busybox-static, cryptsetup, genisoimage',
  isRoot && [...BOOTC_TOOLS, '/usr/bin/genisoimage'].every(hasTool));

const TOKEN = 'bootc-agent-token-0123456789abcdefghijklmnop';
/** Stands for whatever else is in the agent's environment (a BMC password, a TLS key path). */
const CANARY = 'agent-env-canary-7f3a9c';
const GiB = 2 ** 30;
const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const ROOT = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';

describe.skipIf(!canRun)('standby.execute_bootc_install with real podman, a TLS+htpasswd registry and the bootc double', () => {
  let sb: BootcSandbox;
  let disk: LoopDevice;
  let agent: AgentProcess;
  let api: ReturnType<typeof agentCommands>;
  let image: string;
  let noBootc: string;
  let workDir: string;
  const keys = testKeys();
  /** Every form the secret takes on its way: password, user:password, Ironic's wire value, the `auth` value. */
  let secretForms: string[];
  /** Accepts every connection and closes it at once (before the TLS handshake ends). */
  let dropper: { port: number; server: Server; accepted: number };

  beforeAll(async () => {
    sb = await BootcSandbox.create();
    image = sb.publish('fake-bootc', { withBootc: true });
    noBootc = sb.publish('no-bootc', { withBootc: false });
    const auth = Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64');
    secretForms = [REGISTRY_PASSWORD, `${REGISTRY_USER}:${REGISTRY_PASSWORD}`, auth, sb.pullSecret()];
    // Root device selection without hints wants at least 4 GiB (spec §9.9); the file is sparse.
    disk = await LoopDevice.create(4 * GiB);
    workDir = sb.agentWorkDir;
    agent = await AgentProcess.start({
      cmdline: `ipa-agent-token=${TOKEN}`,
      flags: ['--allow-device', disk.path, '--bootc-work-dir', workDir, '--bootc-pull-retry-delay', '1'],
      env: { ...sb.env, INA_TEST_CANARY: CANARY },
    });
    await agent.waitForMessage('agent API listening');
    api = agentCommands(`http://127.0.0.1:${agent.port}`, TOKEN);
    const server = createServer((sock) => {
      dropper.accepted++;
      sock.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    dropper = { port: (server.address() as AddressInfo).port, server, accepted: 0 };
  }, 120_000);

  afterAll(async () => {
    dropper?.server.close();
    await agent?.stop();
    await disk?.destroy();
    await sb?.destroy();
  });

  async function install(params: Record<string, unknown>): Promise<CommandStatus> {
    const started = await api.post('standby.execute_bootc_install', params);
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    return api.finished(started.body.id);
  }

  /** After every outcome: no auth file or keys directory left, the secret nowhere in the log, the agent serving. */
  async function noSecretLeft(): Promise<void> {
    expect(readdirSync(workDir)).toEqual([]);
    const log = agent.lines.map((l) => JSON.stringify(l)).join('\n') + agent.stderr.join('');
    for (const s of secretForms) expect(log).not.toContain(s);
    const status = await api.post('standby.get_partition_uuids', {}, true);
    expect(status.status).toBe(200);
  }

  test('installs the image with a pull secret and authorized keys; no secret reaches the container or the disk', async () => {
    const s = await install({ image_source: `oci://${image}`, pull_secret: sb.pullSecret(), instance_info: { bootc_authorized_keys: keys } });
    expect(s.command_error, JSON.stringify(s.command_error)).toBeNull();
    expect(s.command_status).toBe('SUCCEEDED');
    expect(s.command_result).toEqual({ result: `execute_bootc_install: Container image (oci://${image}) written to device ${disk.path}` });

    // bootc's layout (spec/bootc.md §4.2 step 9): BIOS-BOOT, EFI-SYSTEM 512 MiB, root = disk - 768 MiB.
    const table = partitionTable(disk.path);
    expect(table.map((p) => p.name)).toEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'root']);
    expect(table[1]).toMatchObject({ type: ESP, size: 512 * 2048 });
    expect(table[2]).toMatchObject({ type: ROOT, size: (4096 - 768) * 2048 });
    rescan(disk.path);
    expect(probe(disk.partition(2))).toMatchObject({ TYPE: 'vfat', LABEL: 'EFI-SYSTEM' });
    expect(probe(disk.partition(3))).toMatchObject({ TYPE: 'ext4', LABEL: 'root' });

    const seen = withMounted(disk.partition(3), (root) => {
      const dep = installedDeployment(root);
      return {
        ...dep,
        aleph: JSON.parse(readFileSync(join(root, '.bootc-aleph.json'), 'utf8')) as Record<string, unknown>,
        argv: readFileSync(join(root, '.fake-bootc/argv'), 'utf8'),
        env: readFileSync(join(root, '.fake-bootc/env'), 'utf8'),
        mountinfo: readFileSync(join(root, '.fake-bootc/mountinfo'), 'utf8'),
        probe: readFileSync(join(root, '.fake-bootc/probe'), 'utf8'),
      };
    });
    expect(seen.authorizedKeys).toBe(keys);
    expect(seen.aleph).toMatchObject({ image, digest: sb.digest(image) });
    expect(seen.kargs).toMatch(/^root=UUID=[0-9a-f-]{36} rw console=ttyS0,115200n8 selinux=0 ostree=/);
    expect(seen.argv).toMatch(new RegExp(`^install to-disk --wipe --skip-fetch-check --root-size=3328M --root-ssh-authorized-keys=${workDir}/keys-\\w+/authorized_keys --disable-selinux ${disk.path}$`, 'm'));

    // What the tenant's container was given: neither the pull secret, nor the agent's token or
    // environment, nor a mount of the agent's state or work directory (only the keys, read-only).
    for (const text of [seen.env, seen.mountinfo, seen.argv]) {
      for (const s of [...secretForms, TOKEN, CANARY]) expect(text).not.toContain(s);
    }
    expect(seen.env).not.toMatch(/^(CONTAINERS_\w+|INA_TEST_CANARY)=/m);
    // (the test's own FAKE_BOOTC_* knobs come from containers.conf, not from the agent)
    expect(seen.env.split('\n').filter((l) => !l.startsWith('FAKE_BOOTC_')).join('\n')).not.toContain(sb.dir);
    // mountinfo field 4 is the mounted path in its source filesystem: apart from podman's own
    // storage, the only host directory of the agent's in the container is the keys directory, read-only.
    const fields = seen.mountinfo.trim().split('\n').map((l) => l.split(' '));
    const agentMounts = fields.filter((f) => f[3]!.startsWith(sb.dir) && !f[3]!.startsWith(`${sb.dir}/graph`) && !f[3]!.startsWith(`${sb.dir}/run`));
    expect(agentMounts.map((f) => [f[3], f[4]])).toEqual([[expect.stringMatching(new RegExp(`^${workDir}/keys-\\w+$`)), agentMounts[0]?.[3]]]);
    expect(agentMounts[0]![5]).toMatch(/^ro\b/);
    expect(fields.filter((f) => /ina-agent-|ina-state-/.test(f[3]!))).toEqual([]);

    // While bootc ran, the agent's work directory (which the container can reach through
    // /proc/<pid>/root, see README) held the keys only: the auth file was already gone.
    expect(seen.probe.trim().split('\n')).toEqual(['.', expect.stringMatching(/^\.\/keys-\w+$/), expect.stringMatching(/^\.\/keys-\w+\/authorized_keys$/)]);

    // Nothing of the secret on the target disk, anywhere (raw device, holes included).
    expect(fileContains(disk.file, secretForms)).toBe(false);
    await noSecretLeft();
    expect(agent.lines.some((l) => l.msg === 'bootc install progress' && String(l.bootc).includes('Installation complete!'))).toBe(true);
  });

  test('by digest, with a config drive: a config-2 partition follows the bootc layout', async () => {
    const digest = sb.digest(image);
    const byDigest = `${image.replace(/:1$/, '')}@${digest}`;
    const s = await install({ image_source: `oci://${byDigest}`, pull_secret: sb.pullSecret(), configdrive: makeConfigDrive('n-bootc') });
    expect(s.command_error, JSON.stringify(s.command_error)).toBeNull();
    const table = partitionTable(disk.path);
    expect(table.map((p) => p.name ?? '')).toEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'root', expect.any(String)]);
    const last = table[3]!;
    // IPA's 64 MiB config drive at the end of the disk, after the root bootc made.
    expect(last.start).toBeGreaterThan(table[2]!.start + table[2]!.size - 1);
    rescan(disk.path);
    expect(probe(disk.partition(4))).toMatchObject({ LABEL: 'config-2' });
    const uuids = (await api.post('standby.get_partition_uuids', {}, true)).body.command_result;
    expect(uuids).toMatchObject({ 'efi system partition uuid': table[1]!.uuid!.toLowerCase() });
    await noSecretLeft();
  });

  const failures: { name: string; params: () => Record<string, unknown>; type: string; details: RegExp; check?: () => void }[] = [
    {
      name: 'a wrong password (401)',
      params: () => ({ image_source: `oci://${image}`, pull_secret: sb.pullSecret(REGISTRY_USER, 'wrong-password') }),
      type: 'ImageDownloadFatalError', details: /the registry refused the credentials \(check the node's pull secret\).*unauthorized/,
    },
    {
      name: 'no pull secret for a registry that needs one',
      params: () => ({ image_source: `oci://${image}` }),
      type: 'ImageDownloadFatalError', details: /the registry refused the credentials/,
    },
    {
      name: 'a pull secret that is not base64',
      params: () => ({ image_source: `oci://${image}`, pull_secret: 'not base64 at all!' }),
      type: 'InvalidCommandParamsError', details: /^oci_pull_secret is not valid base64$/,
    },
    {
      name: 'a pull secret that is base64 of something else',
      params: () => ({ image_source: `oci://${image}`, pull_secret: Buffer.from('just-a-password').toString('base64') }),
      type: 'InvalidCommandParamsError', details: /does not decode to a registry auth value/,
    },
    {
      name: 'an image that does not exist',
      params: () => ({ image_source: `oci://${sb.registry}/test/absent:1`, pull_secret: sb.pullSecret() }),
      type: 'ImageDownloadFatalError', details: /the image does not exist in the registry/,
    },
    {
      name: 'an image without bootc',
      params: () => ({ image_source: `oci://${noBootc}`, pull_secret: sb.pullSecret() }),
      type: 'ImageDownloadError', details: /Container image 127\.0\.0\.1:\d+\/test\/no-bootc:1 does not contain the required bootc binary/,
    },
    {
      name: 'bootc_authorized_keys with a bad line',
      params: () => ({ image_source: `oci://${image}`, pull_secret: sb.pullSecret(), instance_info: { bootc_authorized_keys: `${testKeys()}ssh-rsa not-a-key user@host\n` } }),
      type: 'InvalidCommandParamsError', details: /bootc_authorized_keys line 3 is not an SSH public key/,
    },
    {
      name: 'a malformed digest',
      params: () => ({ image_source: `oci://${sb.registry}/test/fake-bootc@sha256:abc`, pull_secret: sb.pullSecret() }),
      type: 'InvalidCommandParamsError', details: /digest "sha256:abc" is not sha256:<64 hex>/,
    },
    {
      name: 'a port out of range',
      params: () => ({ image_source: 'oci://127.0.0.1:99999/test/fake-bootc:1', pull_secret: sb.pullSecret() }),
      type: 'InvalidCommandParamsError', details: /port 99999 is out of range/,
    },
    {
      name: 'a registry that accepts connections and drops them',
      params: () => ({ image_source: `oci://127.0.0.1:${dropper.port}/test/fake-bootc:1`, pull_secret: sb.pullSecret() }),
      type: 'ImageDownloadError', details: /the registry could not be reached.*(EOF|connection reset)/,
      // Network trouble is retried (--bootc-pull-retries 3; podman 4.3 cannot do it itself).
      check: () => expect(dropper.accepted).toBeGreaterThanOrEqual(4),
    },
    {
      name: 'a registry that is not listening',
      params: () => ({ image_source: 'oci://127.0.0.1:9/test/fake-bootc:1', pull_secret: sb.pullSecret() }),
      type: 'ImageDownloadError', details: /the registry could not be reached.*connection refused/,
    },
  ];

  for (const f of failures) {
    test(`${f.name}: a clear error, no secret left behind, the agent still serving`, async () => {
      const before = partitionTable(disk.path).length;
      const s = await install(f.params());
      expect(s.command_status).toBe('FAILED');
      expect(s.command_error?.type).toBe(f.type);
      expect(s.command_error?.details).toMatch(f.details);
      f.check?.();
      for (const secret of secretForms) expect(JSON.stringify(s.command_error)).not.toContain(secret);
      // Only the image without bootc gets as far as the container; bootc then never starts.
      expect(partitionTable(disk.path).length).toBe(before);
      await noSecretLeft();
    });
  }

  test('not enough room for the image: refused before the pull, saying how much is needed and how much there is', async () => {
    const big = sb.publish('fake-bootc-big', { withBootc: true });
    const greedy = await AgentProcess.start({
      cmdline: `ipa-agent-token=${TOKEN}`,
      // As if the image unpacked to a million times its size: more than any disk or RAM here.
      flags: ['--allow-device', disk.path, '--bootc-work-dir', workDir, '--bootc-expansion-factor', '1000000'],
      env: sb.env,
    });
    try {
      await greedy.waitForMessage('agent API listening');
      const cmds = agentCommands(`http://127.0.0.1:${greedy.port}`, TOKEN);
      const r = await cmds.post('standby.execute_bootc_install', { image_source: `oci://${big}`, pull_secret: sb.pullSecret() });
      const s = await cmds.finished(r.body.id);
      expect(s.command_status).toBe('FAILED');
      expect(s.command_error?.type).toBe('ImageDownloadOutofSpaceError'); // IPA's spelling
      expect(s.command_error?.details).toMatch(new RegExp(`not enough room to pull it: it needs about \\d+ MiB \\(\\d+ MiB compressed x 1000000\\) in container storage, but ${sb.dir}/graph has \\d+ MiB free`));
      expect(sb.podman(['images', '--format', '{{.Repository}}'])).not.toContain('fake-bootc-big');
      expect(readdirSync(workDir)).toEqual([]);
    } finally {
      await greedy.stop();
    }
  });

  test('bootc itself fails (TPM2 LUKS asked, no TPM): ImageWriteError with bootc\'s message, auth and keys gone', async () => {
    const s = await install({
      image_source: `oci://${image}`, pull_secret: sb.pullSecret(),
      instance_info: { bootc_tpm2_luks: true, bootc_authorized_keys: keys },
    });
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.type).toBe('ImageWriteError');
    expect(s.command_error?.details).toMatch(/Enrolling root device with TPM failed/);
    // bootc had already partitioned and formatted: the agent wiped both GPT copies, so the
    // half-installed disk cannot boot.
    expect(probe(disk.path).PTTYPE).toBeUndefined();
    expect(agent.lines.some((l) => l.msg === 'bootc install did not finish: partition tables wiped so the disk cannot boot')).toBe(true);
    await noSecretLeft();
  });
});

describe.skipIf(!canRun)('execute_bootc_install on a disk too small for bootc\'s layout', () => {
  let small: LoopDevice;
  let api: Awaited<ReturnType<typeof startAgent>>;
  let workDir: string;

  beforeAll(async () => {
    small = await LoopDevice.create(1536 * 2 ** 20);
    workDir = mkdtempSync(join('/var/tmp', 'ina-bootc-small-'));
    api = await startAgent({ flags: { 'agent-token': TOKEN, 'allow-device': [small.path], 'bootc-work-dir': join(workDir, 'w') } });
  });

  afterAll(async () => {
    await api?.stop();
    await small?.destroy();
    rmSync(workDir, { recursive: true, force: true });
  });

  test('the deploy step names the sizes, before anything is pulled or written', async () => {
    const cmds = agentCommands(api.url, TOKEN);
    const before = await hashRange(small.path, 0, 2 ** 20);
    const node = { uuid: 'n-small', instance_info: { root_device: { name: small.path }, bootc_tpm2_luks: true } };
    const step = { interface: 'deploy', step: 'execute_bootc_install', args: { image_source: 'oci://127.0.0.1:5000/test/any:1', configdrive: null, oci_pull_secret: null } };
    const r = await cmds.post('deploy.execute_deploy_step', { step, node, ports: [] });
    const s = await cmds.finished(r.body.id);
    expect(s.command_status).toBe('FAILED');
    expect(s.command_error?.details).toMatch(new RegExp(`Disk ${small.path} is too small for a bootc install with TPM2 LUKS: it has 1536 MiB, the layout needs at least 1790 MiB`));
    expect(api.logs().some((l) => /bootc image pull/.test(String(l.msg)))).toBe(false);
    expect(await hashRange(small.path, 0, 2 ** 20)).toBe(before);
    // The agent still serves.
    expect((await cmds.post('standby.get_partition_uuids', {}, true)).status).toBe(200);
  });
});
