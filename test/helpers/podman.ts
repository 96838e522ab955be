import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './ports.ts';

export const PODMAN_TOOLS = ['/usr/bin/podman', '/usr/bin/docker-registry', '/bin/busybox'];

/**
 * Rootful podman confined to a temporary directory (its own storage, runtime state and
 * registry configuration, spec/bootc.md §2) plus a plain-HTTP docker-registry on 127.0.0.1,
 * so container tests neither see nor leave images in the machine's storage. The settings
 * this machine needs: runc (crun refuses hybrid cgroups), explicit ulimits (no CAP_SYS_RESOURCE).
 */
export class PodmanSandbox {
  readonly dir: string;
  readonly registry: string;
  readonly env: Record<string, string>;
  private readonly registryProcess: ChildProcess;
  private readonly saved: Record<string, string | undefined> = {};

  private constructor(dir: string, registry: string, env: Record<string, string>, child: ChildProcess) {
    this.dir = dir;
    this.registry = registry;
    this.env = env;
    this.registryProcess = child;
  }

  static async create(): Promise<PodmanSandbox> {
    const dir = mkdtempSync(join(tmpdir(), 'ina-podman-'));
    const port = await freePort();
    const registry = `127.0.0.1:${port}`;
    writeFileSync(join(dir, 'containers.conf'), [
      '[containers]', 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', '',
    ].join('\n'));
    writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run"\n`);
    writeFileSync(join(dir, 'registries.conf'), `[[registry]]\nlocation = "${registry}"\ninsecure = true\n`);
    writeFileSync(join(dir, 'registry.yml'), `version: 0.1\nstorage: {filesystem: {rootdirectory: ${dir}/registry-data}}\nhttp:\n  addr: ${registry}\n`);
    const env = {
      CONTAINERS_CONF: join(dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
    };
    const child = spawn('docker-registry', ['serve', join(dir, 'registry.yml')], { stdio: 'ignore' });
    const sandbox = new PodmanSandbox(dir, registry, env, child);
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`http://${registry}/v2/`);
        if (res.ok) break;
      } catch {
        if (i > 100) throw new Error('docker-registry did not start');
      }
      await delay(100);
    }
    return sandbox;
  }

  podman(args: string[]): string {
    return execFileSync('podman', args, { env: { ...process.env, ...this.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A busybox image with `script` as its command, pushed to the registry; returns its reference. */
  buildImage(name: string, script: string): string {
    const root = join(this.dir, `rootfs-${name}`);
    mkdirSync(join(root, 'bin'), { recursive: true });
    if (!existsSync(join(root, 'bin/busybox'))) execFileSync('cp', ['/bin/busybox', join(root, 'bin/busybox')]);
    const tar = join(this.dir, `${name}.tar`);
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    const local = `localhost/${name}:1`;
    this.podman(['import', '--change', `CMD ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`, tar, local]);
    const remote = `${this.registry}/test/${name}:1`;
    this.podman(['push', local, remote]);
    this.podman(['rmi', local]);
    return remote;
  }

  /** Points the podman of this process (and of the agents it starts) at the sandbox. */
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
    this.registryProcess.kill('SIGTERM');
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
