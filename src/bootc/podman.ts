import { setTimeout as delay } from 'node:timers/promises';
import type { AgentContext } from '../agent-context.ts';
import type { ImageError } from '../writers/errors.ts';
import { pullError } from './registry-errors.ts';

export interface PodmanVersion {
  major: number;
  minor: number;
  text: string;
}

/** `podman version`, asked once per image: the flags we may pass depend on it (spec/bootc.md §4.3). */
export async function podmanVersion(ctx: AgentContext): Promise<PodmanVersion> {
  const out = (await ctx.run('podman', ['version', '--format', '{{.Client.Version}}'])).trim();
  const m = out.match(/^(\d+)\.(\d+)/);
  if (!m) throw new Error(`podman version printed ${JSON.stringify(out)}, not a version`);
  return { major: Number(m[1]), minor: Number(m[2]), text: out };
}

export interface RetryPolicy {
  retries: number;
  delaySeconds: number;
}

/**
 * Runs `attempt` until it succeeds, retrying only failures the classification calls worth
 * retrying (network trouble); a refused credential or a missing image fails at once.
 */
export async function withPullRetries<T>(ctx: AgentContext & { signal: AbortSignal }, image: string, policy: RetryPolicy, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const failure = pullError(image, err) as ImageError;
      if (!failure.retryable || n >= policy.retries || ctx.signal.aborted) throw failure;
      ctx.log.warn({ image, attempt: n + 1, retries: policy.retries, err: failure.details }, 'bootc image pull failed, retrying');
      await delay(policy.delaySeconds * 1000, undefined, { signal: ctx.signal });
    }
  }
}

/**
 * `podman pull` with the auth file. podman 5 retries by itself (`--retry`, `--retry-delay`);
 * 4.x has neither flag (`unknown flag: --retry-delay`), so the agent retries it (spec/bootc.md §3).
 */
export async function pullImage(
  ctx: AgentContext & { signal: AbortSignal },
  image: string,
  opts: { authFile?: string | undefined; version: PodmanVersion; policy: RetryPolicy },
): Promise<void> {
  const auth = opts.authFile ? [`--authfile=${opts.authFile}`] : [];
  const own = opts.version.major >= 5;
  const retry = own ? [`--retry=${opts.policy.retries}`, `--retry-delay=${opts.policy.delaySeconds}s`] : [];
  const policy = own ? { ...opts.policy, retries: 0 } : opts.policy;
  await withPullRetries(ctx, image, policy, () =>
    ctx.run('podman', ['pull', ...auth, ...retry, image], {
      signal: ctx.signal,
      onStderrLine: (line) => ctx.log.info({ image, podman: line.slice(0, 300) }, 'bootc image pull progress'),
    }),
  );
}

/** Size of the pulled image, unpacked (what bootc will copy onto the root filesystem). */
export async function localImageSize(ctx: AgentContext, image: string): Promise<number> {
  const out = await ctx.run('podman', ['image', 'inspect', '--format', '{{.Size}}', image]);
  return Number(out.trim());
}
