import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { freePort } from '../../helpers/ports.ts';

/**
 * A real, unmodified OpenStack Ironic (Debian's python3-ironic 21.4, API and conductor in one
 * process) on 127.0.0.1, for driving the agent from the outside: fake-hardware nodes, noauth,
 * sqlite, fast track. Ported from the project's shared harness; every port is picked free
 * so several can run side by side. Needs `apt-get install python3-ironic ironic-common`.
 */
export interface IronicOptions {
  fastTrack?: boolean;
  automatedClean?: boolean;
  /** Sent to the agent as config.heartbeat_timeout. */
  heartbeatTimeout?: number;
  callbackTimeout?: number;
  commandTimeout?: number;
  bootMode?: 'uefi' | 'bios';
  /** Extra ironic.conf text, appended last (e.g. `[agent]\nrequire_tls = true`). */
  extraConf?: string;
  /** Base URL of an HTTP server for images (conductor [deploy]http_url). */
  imageServerUrl?: string;
  imageServerRoot?: string;
  /** Extra environment of the Ironic process (e.g. HTTP_PROXY for image URLs only a VM can reach). */
  env?: Record<string, string>;
}

export const IRONIC_BIN = '/usr/bin/ironic';
const API_VERSION = '1.82';

export interface EnrollOptions {
  macs: string[];
  deployInterface?: 'direct' | 'custom-agent' | 'ramdisk' | 'fake';
  /** `agent` lets Ironic rescue the node through the agent (rescue.finalize_rescue). */
  rescueInterface?: 'agent' | 'no-rescue';
  name?: string;
  automatedClean?: boolean;
  fastTrack?: boolean;
  properties?: Record<string, unknown>;
  driverInfo?: Record<string, unknown>;
  /** manageable (default) or enroll; available runs provide (the agent must be running). */
  state?: 'enroll' | 'manageable';
  powerOn?: boolean;
}

export interface NodeView {
  uuid: string;
  provision_state: string;
  target_provision_state: string | null;
  last_error: string | null;
  maintenance: boolean;
  power_state: string | null;
  driver_internal_info: Record<string, unknown>;
  instance_info: Record<string, unknown>;
  [key: string]: unknown;
}

export class Ironic {
  readonly dir: string;
  readonly url: string;
  private readonly process: ChildProcess;

  private constructor(dir: string, url: string, child: ChildProcess) {
    this.dir = dir;
    this.url = url;
    this.process = child;
  }

  static async start(opts: IronicOptions = {}): Promise<Ironic> {
    const dir = await mkdtemp(join(tmpdir(), 'ina-ironic-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    for (const sub of ['tmp', 'certs', 'deploy-logs', 'locks', 'httpboot', 'tftpboot', 'images', 'master_images', 'files']) {
      await mkdir(join(dir, sub), { recursive: true });
    }
    await writeFile(join(dir, 'ironic.conf'), ironicConf(dir, port, url, opts));
    // Extra settings go into a second file loaded last, as oslo.config layers them.
    await writeFile(join(dir, 'extra.conf'), opts.extraConf ?? '');
    const confArgs = ['--config-file', join(dir, 'ironic.conf'), '--config-file', join(dir, 'extra.conf')];
    await runToEnd('ironic-dbsync', [...confArgs, 'create_schema'], dir);
    const child = spawn(IRONIC_BIN, confArgs, {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'ignore', 'ignore'],
      detached: true,
    });
    const ironic = new Ironic(dir, url, child);
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`ironic exited during start-up:\n${await ironic.logTail()}`);
      try {
        const drivers = await ironic.api<{ drivers: { name: string }[] }>('GET', '/v1/drivers');
        if (drivers.drivers.some((d) => d.name === 'fake-hardware')) return ironic;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        await ironic.stop();
        throw new Error('Ironic API did not come up within 90 s');
      }
      await delay(300);
    }
  }

  async stop(opts: { keepDir?: boolean } = {}): Promise<void> {
    if (this.process.exitCode === null && this.process.pid) {
      try {
        process.kill(-this.process.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const deadline = Date.now() + 15_000;
      while (this.process.exitCode === null && Date.now() < deadline) await delay(100);
      if (this.process.exitCode === null) process.kill(-this.process.pid, 'SIGKILL');
    }
    if (!opts.keepDir) await rm(this.dir, { recursive: true, force: true });
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(join(this.dir, 'ironic.log'), 'utf8').catch(() => '(no ironic.log)');
    return text.split('\n').slice(-lines).join('\n');
  }

  /** One Ironic API call; throws with Ironic's error text on HTTP >= 400. */
  async api<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const res = await request(this.url + path, {
      method,
      headers: {
        'x-openstack-ironic-api-version': API_VERSION,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw new Error(`Ironic ${method} ${path}: HTTP ${res.statusCode}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async node(uuid: string): Promise<NodeView> {
    return this.api<NodeView>('GET', `/v1/nodes/${uuid}`);
  }

  /**
   * A fake-hardware node with one port per MAC, moved to manageable and powered on (fast track
   * needs power on). `properties.vendor=lenovo` lets a `direct` deploy finish on fake-hardware
   * (Ironic 21.4 skips set_boot_device(disk) for Lenovo in UEFI mode, bug 2053064).
   */
  async enroll(opts: EnrollOptions): Promise<string> {
    const node = await this.api<{ uuid: string }>('POST', '/v1/nodes', {
      driver: 'fake-hardware',
      deploy_interface: opts.deployInterface ?? 'direct',
      boot_interface: 'fake',
      power_interface: 'fake',
      management_interface: 'fake',
      network_interface: 'noop',
      ...(opts.rescueInterface ? { rescue_interface: opts.rescueInterface } : {}),
      ...(opts.name ? { name: opts.name } : {}),
      ...(opts.automatedClean === undefined ? {} : { automated_clean: opts.automatedClean }),
      properties: { cpu_arch: 'x86_64', local_gb: 10, vendor: 'lenovo', ...opts.properties },
      driver_info: { ...(opts.fastTrack === undefined ? {} : { fast_track: String(opts.fastTrack) }), ...opts.driverInfo },
    });
    for (const mac of opts.macs) await this.api('POST', '/v1/ports', { node_uuid: node.uuid, address: mac });
    if ((opts.state ?? 'manageable') === 'manageable') {
      await this.provision(node.uuid, 'manage', { wait: 'manageable' });
      if (opts.powerOn ?? true) await this.setPower(node.uuid, 'power on');
    }
    return node.uuid;
  }

  async setPower(uuid: string, target: 'power on' | 'power off'): Promise<void> {
    await this.api('PUT', `/v1/nodes/${uuid}/states/power`, { target });
    await this.waitFor(uuid, (n) => n.power_state === target, 30, `power ${target}`);
  }

  async patch(uuid: string, ops: { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown }[]): Promise<void> {
    await this.api('PATCH', `/v1/nodes/${uuid}`, ops);
  }

  /**
   * PUT states/provision and wait for `wait` (default derived from the target). A `* failed`
   * state other than the awaited one throws with last_error and the log tail.
   */
  async provision(
    uuid: string,
    target: string,
    opts: { wait?: string | null; timeoutSeconds?: number; cleanSteps?: unknown[]; deploySteps?: unknown[]; configdrive?: unknown; rescuePassword?: string } = {},
  ): Promise<NodeView | undefined> {
    const body: Record<string, unknown> = { target };
    if (opts.rescuePassword !== undefined) body.rescue_password = opts.rescuePassword;
    if (opts.configdrive !== undefined) body.configdrive = opts.configdrive;
    if (opts.cleanSteps) body.clean_steps = opts.cleanSteps;
    if (opts.deploySteps) body.deploy_steps = opts.deploySteps;
    await this.api('PUT', `/v1/nodes/${uuid}/states/provision`, body);
    const wait = opts.wait === undefined ? STATE_AFTER[target] : opts.wait;
    if (!wait) return undefined;
    return this.waitState(uuid, wait, opts.timeoutSeconds ?? 120);
  }

  async waitState(uuid: string, want: string, timeoutSeconds = 120): Promise<NodeView> {
    return this.waitFor(uuid, (n) => {
      if (n.provision_state === want && !n.target_provision_state) return true;
      if (n.provision_state.endsWith('failed') && want !== n.provision_state) {
        throw new Error(`node ${uuid} is in ${n.provision_state}: ${n.last_error}`);
      }
      return false;
    }, timeoutSeconds, `provision state ${want}`);
  }

  async waitFor(uuid: string, done: (n: NodeView) => boolean, timeoutSeconds: number, what: string): Promise<NodeView> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const node = await this.node(uuid);
      if (done(node)) return node;
      if (Date.now() > deadline) {
        throw new Error(
          `timeout waiting for ${what} of node ${uuid} (now ${node.provision_state} -> ${node.target_provision_state}, last_error ${node.last_error})\n${await this.logTail()}`,
        );
      }
      await delay(300);
    }
  }
}

const STATE_AFTER: Record<string, string> = {
  manage: 'manageable',
  clean: 'manageable',
  provide: 'available',
  deleted: 'available',
  active: 'active',
  rebuild: 'active',
  rescue: 'rescue',
  unrescue: 'active',
};

function ironicConf(dir: string, port: number, url: string, o: IronicOptions): string {
  const bool = (v: boolean | undefined, d: boolean) => String(v ?? d);
  return `# Written by test/e2e/harness/ironic.ts: a standalone Ironic for agent tests.
[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = ina-test-ironic
my_ip = 127.0.0.1
debug = true
use_stderr = false
log_file = ${dir}/ironic.log
state_path = ${dir}
tempdir = ${dir}/tmp
enabled_hardware_types = fake-hardware
enabled_bios_interfaces = no-bios,fake
enabled_boot_interfaces = fake
enabled_console_interfaces = no-console,fake
enabled_deploy_interfaces = direct,custom-agent,ramdisk,fake
default_deploy_interface = direct
enabled_inspect_interfaces = no-inspect,fake
enabled_management_interfaces = fake
enabled_network_interfaces = noop
default_network_interface = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = no-raid,agent,fake
enabled_rescue_interfaces = no-rescue,agent,fake
enabled_storage_interfaces = noop,fake
enabled_vendor_interfaces = no-vendor,fake

[api]
host_ip = 127.0.0.1
port = ${port}
api_workers = 1
ramdisk_heartbeat_timeout = ${o.heartbeatTimeout ?? 10}

[database]
connection = sqlite:///${dir}/ironic.sqlite

[service_catalog]
endpoint_override = ${url}

[conductor]
automated_clean = ${bool(o.automatedClean, true)}
deploy_callback_timeout = ${o.callbackTimeout ?? 120}
clean_callback_timeout = ${o.callbackTimeout ?? 120}
rescue_callback_timeout = ${o.callbackTimeout ?? 120}
check_provision_state_interval = 5
sync_power_state_interval = 0
heartbeat_interval = 2
power_state_change_timeout = 2
file_url_allowed_paths = ${dir}/files

[deploy]
# The agent's erase steps are off in automated cleaning unless a test turns them on in
# extraConf (test/e2e/cleaning.test.ts): an agent without an allowlist would otherwise be
# asked to erase this machine's own disk, which its disk guard refuses (clean failed).
erase_devices_priority = 0
erase_devices_metadata_priority = 0
fast_track = ${bool(o.fastTrack, true)}
fast_track_timeout = 60
default_boot_mode = ${o.bootMode ?? 'uefi'}
http_url = ${o.imageServerUrl ?? 'http://127.0.0.1:9'}
http_root = ${o.imageServerRoot ?? `${dir}/httpboot`}

[agent]
image_download_source = http
command_timeout = ${o.commandTimeout ?? 30}
command_wait_attempts = 60
command_wait_interval = 1
post_deploy_get_power_state_retries = 0
post_deploy_get_power_state_retry_interval = 1
deploy_logs_collect = on_failure
deploy_logs_local_path = ${dir}/deploy-logs
certificates_path = ${dir}/certs

[pxe]
tftp_root = ${dir}/tftpboot
images_path = ${dir}/images
instance_master_path = ${dir}/master_images

[oslo_concurrency]
lock_path = ${dir}/locks
`;
}

async function runToEnd(file: string, args: string[], dir: string): Promise<void> {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`${file} ${args.join(' ')} failed in ${dir} (exit ${code}):\n${output.slice(-4000)}`);
}
