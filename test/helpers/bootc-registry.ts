import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, fetch } from 'undici';
import { freePort } from './ports.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/bootc/', import.meta.url));
/** Not under /tmp: bootc mounts a fresh tmpfs over a non-tmpfs /tmp and would hide the keys (spec/bootc.md §4.3). */
const BASE = '/var/tmp';
const IMAGE_CACHE = join(BASE, 'ina-bootc-image-cache');

export const BOOTC_TOOLS = [
  '/usr/bin/podman', '/usr/bin/docker-registry', '/usr/bin/skopeo', '/usr/bin/htpasswd', '/usr/bin/openssl',
  '/bin/busybox', '/usr/sbin/cryptsetup', '/usr/bin/systemd-cryptenroll', '/usr/sbin/mkfs.fat', '/usr/sbin/sfdisk',
];
export const TPM_TOOLS = ['/usr/bin/swtpm', '/usr/bin/tpm2_unseal', '/usr/bin/tpm2_pcrextend'];

export const REGISTRY_USER = 'testuser';
export const REGISTRY_PASSWORD = 's3cret-pull-pass';

function run(file: string, args: string[], env?: Record<string, string>): string {
  return execFileSync(file, args, { encoding: 'utf8', env: env ? { ...process.env, ...env } : process.env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The fixture scripts' digest: a cached image is rebuilt whenever the double changes. */
function fixtureDigest(): string {
  const h = createHash('sha256');
  for (const f of ['fake-bootc', 'mkrootfs.sh']) h.update(readFileSync(join(FIXTURES, f)));
  return h.digest('hex').slice(0, 16);
}

export interface SandboxOptions {
  /** Environment podman puts into every container (containers.conf `env`), e.g. the swtpm TCTI. */
  containerEnv?: Record<string, string>;
}

/**
 * Everything the bootc path talks to, real and local (spec/bootc.md §7-8): rootful podman
 * confined to its own storage and configuration, a docker-registry on 127.0.0.1 with TLS and
 * htpasswd (bcrypt), the registry's CA trusted through `$HOME/.config/containers/certs.d`,
 * and two test images built from host binaries without network: one with the bootc double
 * (`test/fixtures/bootc/fake-bootc`), one without bootc.
 */
export class BootcSandbox {
  readonly dir: string;
  readonly registry: string;
  readonly env: Record<string, string>;
  readonly caFile: string;
  /** docker config.json with the admin credentials (for pushing); tests never give it to the agent. */
  readonly adminAuth: string;
  /** Where tests point the agent's --bootc-work-dir; the double lists it from inside the container. */
  readonly agentWorkDir: string;
  private readonly child: ChildProcess;
  private readonly saved: Record<string, string | undefined> = {};

  private constructor(dir: string, registry: string, env: Record<string, string>, child: ChildProcess) {
    this.dir = dir;
    this.registry = registry;
    this.env = env;
    this.child = child;
    this.caFile = join(dir, 'registry.crt');
    this.adminAuth = join(dir, 'admin-auth.json');
    this.agentWorkDir = join(dir, 'agent-work');
  }

  static async create(opts: SandboxOptions = {}): Promise<BootcSandbox> {
    const dir = mkdtempSync(join(BASE, 'ina-bootc-'));
    const port = await freePort();
    const registry = `127.0.0.1:${port}`;
    run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'registry.key'), '-out', join(dir, 'registry.crt')]);
    // distribution accepts only bcrypt entries (-B).
    writeFileSync(join(dir, 'htpasswd'), run('htpasswd', ['-Bbn', REGISTRY_USER, REGISTRY_PASSWORD]));
    writeFileSync(join(dir, 'registry.yml'), [
      'version: 0.1',
      `storage: {filesystem: {rootdirectory: ${dir}/registry-data}, delete: {enabled: true}}`,
      'http:',
      `  addr: ${registry}`,
      '  secret: test-only',
      `  tls: {certificate: ${dir}/registry.crt, key: ${dir}/registry.key}`,
      `auth: {htpasswd: {realm: bootc-test, path: ${dir}/htpasswd}}`,
      'log: {level: warn}',
      '',
    ].join('\n'));
    const certs = join(dir, 'home/.config/containers/certs.d', registry);
    mkdirSync(certs, { recursive: true });
    copyFileSync(join(dir, 'registry.crt'), join(certs, 'ca.crt'));
    // Without a TPM of its own a test names one that does not exist: an empty or unset
    // SYSTEMD_TPM2_DEVICE lets tss2 search localhost:2321, where someone's swtpm may listen (spec/bootc.md §5.2).
    const containerEnv = { FAKE_BOOTC_FAST_KDF: '1', FAKE_BOOTC_NO_DM_OK: '1', FAKE_BOOTC_DUMP: '1', SYSTEMD_TPM2_DEVICE: '/dev/tpmrm0',
      FAKE_BOOTC_PROBE_DIR: join(dir, 'agent-work'), ...opts.containerEnv };
    // spec/bootc.md §2.1: runc (crun refuses hybrid cgroups), explicit ulimits (no CAP_SYS_RESOURCE),
    // the host network (no iptables; lets the container reach swtpm on 127.0.0.1).
    writeFileSync(join(dir, 'containers.conf'), [
      '[containers]',
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      'netns = "host"',
      `env = [${Object.entries(containerEnv).map(([k, v]) => JSON.stringify(`${k}=${v}`)).join(', ')}]`,
      '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', 'no_pivot_root = true', '',
    ].join('\n'));
    writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run"\n`);
    writeFileSync(join(dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    const env = {
      CONTAINERS_CONF: join(dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
      HOME: join(dir, 'home'),
    };
    const child = spawn('docker-registry', ['serve', join(dir, 'registry.yml')], { stdio: 'ignore' });
    const sandbox = new BootcSandbox(dir, registry, env, child);
    writeFileSync(sandbox.adminAuth, JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64') } } }));
    const dispatcher = new Agent({ connect: { ca: readFileSync(sandbox.caFile) } });
    for (let i = 0; ; i++) {
      try {
        // Ready when it answers; without credentials that is a 401.
        const res = await fetch(`https://${registry}/v2/`, { dispatcher });
        if (res.status === 401) break;
      } catch {
        // not listening yet
      }
      if (i > 150) {
        await sandbox.destroy();
        throw new Error('docker-registry did not start');
      }
      await delay(100);
    }
    await dispatcher.close();
    return sandbox;
  }

  /** The pull secret as Ironic sends it: base64 of the registry `auth` value (spec/bootc.md §4.3). */
  pullSecret(user = REGISTRY_USER, password = REGISTRY_PASSWORD): string {
    return Buffer.from(Buffer.from(`${user}:${password}`).toString('base64')).toString('base64');
  }

  podman(args: string[]): string {
    return run('podman', args, this.env);
  }

  /**
   * The image with the bootc double (`withBootc`) or a plain busybox one, pushed to the
   * registry as `test/<name>:1`. Built once per fixture version and kept as an OCI archive
   * in /var/tmp (a clean machine builds it, 1-2 s).
   */
  publish(name: string, opts: { withBootc: boolean }): string {
    const archive = this.buildArchive(opts.withBootc);
    const ref = `${this.registry}/test/${name}:1`;
    run('skopeo', ['copy', '-q', '--dest-authfile', this.adminAuth, '--dest-cert-dir', join(this.env.HOME!, '.config/containers/certs.d', this.registry),
      `oci-archive:${archive}`, `docker://${ref}`], this.env);
    return ref;
  }

  /** Digest of a pushed image, as the registry names it. */
  digest(ref: string): string {
    return run('skopeo', ['inspect', '--format', '{{.Digest}}', '--authfile', this.adminAuth, `docker://${ref}`], this.env).trim();
  }

  private buildArchive(withBootc: boolean): string {
    mkdirSync(IMAGE_CACHE, { recursive: true });
    const archive = join(IMAGE_CACHE, `${withBootc ? 'fake-bootc' : 'no-bootc'}-${fixtureDigest()}.tar`);
    if (existsSync(archive)) return archive;
    const ctx = mkdtempSync(join(this.dir, 'build-'));
    const root = join(ctx, 'rootfs');
    if (withBootc) {
      run('bash', [join(FIXTURES, 'mkrootfs.sh'), root]);
      mkdirSync(join(root, 'usr/bin'), { recursive: true });
      copyFileSync(join(FIXTURES, 'fake-bootc'), join(root, 'usr/bin/bootc'));
      run('chmod', ['755', join(root, 'usr/bin/bootc')]);
    } else {
      mkdirSync(join(root, 'bin'), { recursive: true });
      copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
      for (const a of ['sh', 'ls', 'cat']) run('ln', ['-s', 'busybox', join(root, 'bin', a)]);
    }
    const labels = withBootc ? 'LABEL containers.bootc=1 ostree.bootable=1\n' : '';
    writeFileSync(join(ctx, 'Containerfile'), `FROM scratch\nCOPY rootfs/ /\n${labels}CMD ["/bin/sh"]\n`);
    const tag = `localhost/ina-${withBootc ? 'fake-bootc' : 'no-bootc'}:build`;
    this.podman(['build', '-q', '--network=none', '-t', tag, ctx]);
    const tmp = `${archive}.${randomUUID()}.tmp`;
    this.podman(['save', '-q', '--format', 'oci-archive', '-o', tmp, tag]);
    this.podman(['rmi', tag]);
    rmSync(ctx, { recursive: true, force: true });
    renameSync(tmp, archive);
    return archive;
  }

  /** Points the podman of this process (and of in-process agents) at the sandbox. */
  apply(): void {
    for (const [k, v] of Object.entries(this.env)) {
      this.saved[k] = process.env[k];
      process.env[k] = v;
    }
  }

  async destroy(): Promise<void> {
    for (const [k, v] of Object.entries(this.saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    this.child.kill('SIGTERM');
    try {
      this.podman(['rm', '--all', '--force']);
      this.podman(['rmi', '--all', '--force']);
    } catch {
      // nothing left
    }
    // overlay storage keeps mounts under graph/; podman's reset would touch global state.
    try {
      execFileSync('sh', ['-c', `grep -o '${this.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount`], { stdio: 'ignore' });
    } catch {
      // nothing mounted
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
