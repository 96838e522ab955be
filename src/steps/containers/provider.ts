import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { AgentContext } from '../../agent-context.ts';
import { AgentError } from '../../errors.ts';
import { ToolError } from '../../run.ts';
import { isSecretKey } from '../../secrets.ts';
import { SupportLevel, type StepDefinition, type StepProvider } from '../types.ts';
import { containerSettings, optionWords } from './settings.ts';
import { configurationError, readStepsFile, type FileStep } from './steps-file.ts';

export const containerNotPermitted = (image: string) =>
  new AgentError('ContainerNotPermittedError', 403, 'Container image not permitted', `Container image ${image} is not in the allowed containers list`);

/** A docker:// or oci:// prefix does not make a different image (spec §8.4). */
function normalize(image: string): string {
  return image.replace(/^(docker|oci):\/\//, '');
}

/**
 * Pulls and runs an image: `<runner> pull <pull options> IMAGE`, then `<runner> run <run
 * options> IMAGE` (spec §8.4). The one place images run, so the policy cannot be skipped:
 * steps baked into the ramdisk are trusted; an image named by step arguments must be in
 * allowed_containers unless allow_arbitrary_containers, and then the caller may not choose
 * the options either (--privileged or -v /:/host would defeat the allowlist).
 */
async function runContainer(
  ctx: AgentContext & { signal: AbortSignal },
  image: string,
  opts: { trusted: boolean; pullOptions?: string[] | string | undefined; runOptions?: string[] | string | undefined },
): Promise<{ image: string }> {
  const s = containerSettings(ctx);
  const mayChoose = opts.trusted || s.allowArbitraryContainers;
  if (!mayChoose && !s.allowedContainers.some((allowed) => normalize(allowed) === normalize(image))) {
    ctx.log.error({ image, allowed: s.allowedContainers }, 'refusing to run a container image that is not in allowed_containers');
    throw containerNotPermitted(image);
  }
  if (!mayChoose && (opts.pullOptions !== undefined || opts.runOptions !== undefined)) {
    ctx.log.warn({ image }, 'ignoring pull_options/run_options from step arguments: only the configured options apply to allowed images');
  }
  const pull = mayChoose && opts.pullOptions !== undefined ? optionWords(opts.pullOptions) : s.pullOptions;
  const run = mayChoose && opts.runOptions !== undefined ? optionWords(opts.runOptions) : s.runOptions;
  const secrets = optionSecrets([...pull, ...run]);
  const hide = (text: string) => secrets.reduce((t, secret) => t.split(secret).join('***'), text);
  ctx.log.info({ image, runner: s.runner, pull: pull.map(hide), run: run.map(hide) }, 'running a container step');
  try {
    await ctx.run(s.runner, ['pull', ...pull, image], { signal: ctx.signal });
    await ctx.run(s.runner, ['run', ...run, image], { signal: ctx.signal });
  } catch (err) {
    // A tool's error repeats its command line, and it ends up in the log and in Ironic's last_error.
    if (err instanceof ToolError && secrets.length > 0) throw new ToolError(err.tool, hide(err.message), err.exitCode, hide(err.stderr));
    throw err;
  }
  ctx.log.info({ image }, 'container step completed');
  return { image };
}

/**
 * Values in runner options that must not be shown: registry credentials (`--creds USER:PASS`)
 * and environment values whose name looks secret (`-e BMC_PASSWORD=...`).
 */
export function optionSecrets(words: readonly string[]): string[] {
  const secrets: string[] = [];
  words.forEach((word, i) => {
    const next = words[i + 1];
    if (word === '--creds' && next !== undefined) secrets.push(next);
    else if (word.startsWith('--creds=')) secrets.push(word.slice('--creds='.length));
    const env = (word === '-e' || word === '--env') && next !== undefined ? next : word.startsWith('--env=') ? word.slice('--env='.length) : undefined;
    const eq = env?.indexOf('=') ?? -1;
    if (env !== undefined && eq > 0 && isSecretKey(env.slice(0, eq))) secrets.push(env.slice(eq + 1));
  });
  return secrets.filter((v) => v !== '');
}

const argsinfo = {
  container_url: { description: 'Container image URL', required: true, type: 'string' as const },
  pull_options: { description: 'Pull options', required: false },
  run_options: { description: 'Run options', required: false },
};

/** Steps that take the image from their arguments; IPA offers both names (the second is deprecated). */
function argumentSteps(): StepDefinition[] {
  return ['generic_container_step', 'container_clean_step'].map((name) => ({
    step: name,
    interface: 'deploy',
    kinds: { deploy: { priority: 0 }, clean: { priority: 0, abortable: true }, service: { priority: 0, abortable: true } },
    argsinfo,
    strictArgs: true,
    run: (call, ctx) =>
      runContainer(ctx, String(call.args.container_url), {
        trusted: false,
        pullOptions: call.args.pull_options as string[] | string | undefined,
        runOptions: call.args.run_options as string[] | string | undefined,
      }),
  }));
}

/** A steps-file entry: priority honoured only for clean steps, deploy and service ones at 0 (spec §8.4). */
function fileStep(entry: FileStep): StepDefinition {
  return {
    step: entry.name,
    interface: entry.interface,
    reboot_requested: entry.reboot_requested,
    kinds: {
      clean: { priority: entry.priority, abortable: entry.abortable },
      deploy: { priority: 0 },
      service: { priority: 0, abortable: entry.abortable },
    },
    strictArgs: true,
    run: (_call, ctx) => runContainer(ctx, entry.image, { trusted: true, pullOptions: entry.pull_options, runOptions: entry.run_options }),
  };
}

/** Whether `name` is an executable on PATH (IPA loads the container manager only when podman or docker exists). */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  return path.split(':').some((dir) => {
    try {
      accessSync(join(dir || '.', name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * IPA's ContainerHardwareManager (MAINLINE, version 2): the argument-driven container steps
 * and one step per entry of the steps file. Offered only when a runner is installed. The
 * file is re-read before steps are listed or run (Ironic may name another file in lookup);
 * its steps may not take a name another provider answers to, or they would shadow it.
 */
export function containerProvider(opts: { available?: boolean } = {}): StepProvider[] {
  if (!(opts.available ?? (onPath('podman') || onPath('docker')))) return [];
  const fixed = argumentSteps();
  const provider: StepProvider = {
    displayName: 'ContainerHardwareManager',
    name: 'ContainerHardwareManager',
    version: '2',
    supportLevel: SupportLevel.MAINLINE,
    steps: fixed,
    async refresh(ctx) {
      const path = containerSettings(ctx).containerStepsFile;
      const entries = await readStepsFile(path);
      const taken = new Set([
        ...fixed.map((s) => s.step),
        ...ctx.steps.list().filter((p) => p !== provider).flatMap((p) => p.steps.map((s) => s.step)),
      ]);
      const clash = entries.filter((e) => taken.has(e.name)).map((e) => e.name);
      if (clash.length > 0) {
        throw configurationError(`container steps file ${path}: step ${clash.join(', ')} would shadow a step of the same name; rename it`);
      }
      provider.steps = [...fixed, ...entries.map(fileStep)];
    },
  };
  return [provider];
}
