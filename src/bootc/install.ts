import { rm, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentContext } from '../agent-context.ts';
import { ToolError } from '../run.ts';
import { ImageError, imageWriteError } from '../writers/errors.ts';
import { privateDir } from './pull-secret.ts';
import { tail } from './registry-errors.ts';

export interface InstallPlan {
  image: string;
  device: string;
  graphRoot: string;
  rootMiB: number;
  tpm2Luks: boolean;
  selinux: boolean;
  /** Directory (bind-mounted read-only at the same path) holding `authorized_keys`. */
  keysDir?: string | undefined;
}

/**
 * The `podman run` of the image's own `bootc install to-disk` (spec §7.7 step 9), with IPA's
 * bugs fixed: no `--log-level=debug` (20 s per run without syslog), the keys in a directory
 * outside /tmp (bootc mounts a fresh tmpfs over a non-tmpfs /tmp before reading them), the
 * host's actual image store mounted where bootc looks for it, and nothing of the agent's
 * (state directory, TLS key, environment) mounted or passed.
 */
export function installArgv(plan: InstallPlan): string[] {
  const keys = plan.keysDir ? join(plan.keysDir, 'authorized_keys') : undefined;
  return [
    'run', '--rm', '--privileged', '--pid=host', '--pull=never',
    '-v', `${plan.graphRoot}:/var/lib/containers/storage`,
    '-v', '/dev:/dev',
    ...(plan.keysDir ? ['-v', `${plan.keysDir}:${plan.keysDir}:ro`] : []),
    ...(plan.selinux ? ['--security-opt', 'label=type:unconfined_t'] : []),
    plan.image,
    'bootc', 'install', 'to-disk', '--wipe', '--skip-fetch-check', `--root-size=${plan.rootMiB}M`,
    ...(plan.tpm2Luks ? ['--block-setup=tpm2-luks'] : []),
    ...(keys ? [`--root-ssh-authorized-keys=${keys}`] : []),
    ...(plan.selinux ? [] : ['--disable-selinux']),
    plan.device,
  ];
}

/** The environment podman runs with: only what podman itself reads, never the agent's secrets. */
export function podmanEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const keep = ['PATH', 'HOME', 'LANG', 'CONTAINERS_CONF', 'CONTAINERS_STORAGE_CONF', 'CONTAINERS_REGISTRIES_CONF', 'TMPDIR'];
  const out: Record<string, string> = {};
  for (const k of keep) if (env[k] !== undefined) out[k] = env[k] as string;
  return out;
}

/** SELinux is on when `getenforce` says Enforcing or Permissive; no getenforce means off (spec §7.7 step 8). */
export async function selinuxEnabled(ctx: AgentContext): Promise<boolean> {
  try {
    return /^(Enforcing|Permissive)/.test((await ctx.run('getenforce', [])).trim());
  } catch {
    return false;
  }
}

/** Writes the keys file into a fresh private directory; returns the directory. */
export async function writeKeysDir(workDir: string, keys: string): Promise<string> {
  await privateDir(workDir);
  const dir = await mkdtemp(join(workDir, 'keys-'));
  await writeFile(join(dir, 'authorized_keys'), keys, { mode: 0o600 });
  return dir;
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

const NO_BOOTC = /executable file [`"]?bootc[`"]? not found|"bootc": executable file not found/;

/** Runs the install, logging bootc's output as progress; failures say which kind they are. */
export async function runInstall(ctx: AgentContext & { signal: AbortSignal }, plan: InstallPlan): Promise<void> {
  const out: string[] = [];
  const err: string[] = [];
  const keep = (buf: string[], line: string) => {
    buf.push(line);
    if (buf.length > 40) buf.shift();
  };
  try {
    await ctx.run('podman', installArgv(plan), {
      signal: ctx.signal,
      cleanEnv: true,
      env: podmanEnv(),
      onStdoutLine: (line) => {
        keep(out, line);
        ctx.log.info({ device: plan.device, bootc: line.slice(0, 300) }, 'bootc install progress');
      },
      onStderrLine: (line) => keep(err, line),
    });
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    const stderr = e.stderr || err.join('\n');
    if (e.exitCode === 127 || NO_BOOTC.test(stderr)) {
      throw new ImageError('ImageDownloadError', 500, 'Error downloading image',
        `Container image ${plan.image} does not contain the required bootc binary: ${tail(stderr, 2)}`, false);
    }
    if (e.exitCode === undefined) throw e;
    throw imageWriteError(plan.device, e.exitCode, tail(out.join('\n'), 5), tail(stderr, 8));
  }
}
