import type { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';
import {
  AgentError,
  agentIsBusy,
  errorMessage,
  invalidCommand,
  invalidCommandParams,
  notFound,
  toCommandError,
} from '../errors.ts';
import type { CommandContext, CommandSpec, Extension } from '../extensions/types.ts';
import { redact } from '../log.ts';
import { CommandLog, CommandRecord } from './command-log.ts';

export interface DispatcherHooks {
  /** An async command left RUNNING: the agent forces a heartbeat (spec §4.3). */
  asyncFinished(record: CommandRecord): void;
}

/**
 * The one place commands run, whether they arrive over REST or JSON-RPC (spec §6.6):
 * one command at a time under a lock, 409 while the last async command still runs,
 * params validated before anything is recorded, sync commands answered with their result,
 * async ones recorded as RUNNING and finished in the background.
 */
export class CommandDispatcher {
  readonly log = new CommandLog();
  private readonly extensions = new Map<string, Extension>();
  private readonly ctx: AgentContext;
  private readonly hooks: DispatcherHooks;
  private lock: Promise<unknown> = Promise.resolve();
  /** Aborted by reset(): everything running belongs to a machine that went down. */
  private boot = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(extensions: readonly Extension[], ctx: AgentContext, hooks: DispatcherHooks) {
    for (const ext of extensions) this.extensions.set(ext.name, ext);
    this.ctx = ctx;
    this.hooks = hooks;
  }

  /**
   * The machine went down (simulated power action, or the agent stops): abort running
   * commands, wait until they have stopped, and forget the command log, as a fresh boot would.
   * Waiting matters: two image writers must never overlap on one disk.
   */
  async reset(reason: string): Promise<void> {
    this.boot.abort(new Error(reason));
    while (this.running.size > 0) {
      this.ctx.log.warn({ running: this.running.size }, 'waiting for running commands to stop');
      await Promise.race([Promise.all(this.running), new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    this.log.clear();
    this.boot = new AbortController();
  }

  /** `{extension: [command, ...]}`, for help texts and tests. */
  commandNames(): Record<string, string[]> {
    return Object.fromEntries([...this.extensions].map(([name, ext]) => [name, Object.keys(ext.commands)]));
  }

  /**
   * Runs `<extension>.<command>` with `params`. Throws AgentError for requests the agent
   * refuses (bad name, busy, unknown command, invalid params); everything that happens once
   * the command runs is in the returned record.
   */
  execute(fullName: string, params: Record<string, unknown>): Promise<CommandRecord> {
    const next = this.lock.then(() => this.executeLocked(fullName, params));
    this.lock = next.catch(() => undefined);
    return next;
  }

  private async executeLocked(fullName: string, params: Record<string, unknown>): Promise<CommandRecord> {
    const dot = fullName.indexOf('.');
    if (dot <= 0 || dot === fullName.length - 1) {
      throw invalidCommand('Command name must be of the form <extension>.<name>');
    }
    const extName = fullName.slice(0, dot);
    const cmdName = fullName.slice(dot + 1);
    const last = this.log.last();
    if (last?.running) throw agentIsBusy(last.name);

    const extension = this.extensions.get(extName);
    if (!extension) throw notFound(`Extension with id ${extName} not found.`);
    const spec = Object.hasOwn(extension.commands, cmdName) ? extension.commands[cmdName] : undefined;
    if (!spec) throw invalidCommand(`Unknown command: ${cmdName}`);
    const parsed = spec.params.safeParse(params);
    if (!parsed.success) throw invalidCommandParams(formatIssues(parsed.error));
    spec.validate?.(parsed.data, this.ctx);

    this.ctx.log.info({ command: fullName, params: redact(params) }, 'executing command');
    return spec.mode === 'sync'
      ? this.runSync(fullName, cmdName, spec, parsed.data)
      : this.startAsync(fullName, cmdName, spec, parsed.data);
  }

  private async runSync(fullName: string, cmdName: string, spec: CommandSpec, params: unknown): Promise<CommandRecord> {
    let record: CommandRecord;
    try {
      const value = await spec.run(params, this.commandContext(cmdName, () => undefined));
      record = new CommandRecord(cmdName, 'SUCCEEDED');
      record.finish('SUCCEEDED', wrapResult(value, undefined), null);
    } catch (err) {
      // Content errors raised by a sync command reach the caller as HTTP errors (spec §6.6).
      if (err instanceof AgentError && (err.code === 400 || err.overHttp)) throw err;
      this.ctx.log.error({ command: fullName, err: errorMessage(err) }, 'command failed');
      record = new CommandRecord(fullName, 'FAILED');
      record.finish('FAILED', null, toCommandError(err));
    }
    this.log.add(record);
    return record;
  }

  private startAsync(fullName: string, cmdName: string, spec: CommandSpec, params: unknown): CommandRecord {
    const record = new CommandRecord(cmdName, 'RUNNING');
    this.log.add(record);
    const ctx = this.commandContext(cmdName, (progress) => {
      if (record.running) record.progress = progress;
    });
    const task = (async () => {
      try {
        const value = await spec.run(params, ctx);
        record.finish('SUCCEEDED', wrapResult(value, cmdName), null);
        this.ctx.log.info({ command: fullName, id: record.id }, 'command succeeded');
      } catch (err) {
        const status = err instanceof AgentError && err.type === 'VersionMismatch' ? 'CLEAN_VERSION_MISMATCH' : 'FAILED';
        record.finish(status, null, toCommandError(err));
        this.ctx.log.error({ command: fullName, id: record.id, status, err: errorMessage(err) }, 'command failed');
      }
      this.hooks.asyncFinished(record);
    })();
    this.running.add(task);
    void task.finally(() => this.running.delete(task));
    return record;
  }

  private commandContext(commandName: string, setProgress: (p: unknown) => void): CommandContext {
    return Object.assign(Object.create(this.ctx) as AgentContext, { commandName, setProgress, signal: this.boot.signal });
  }
}

/** A string result becomes `{"result": S}`, prefixed with the command name when async (spec §6.3). */
function wrapResult(value: unknown, asyncName: string | undefined): unknown {
  if (typeof value === 'string') return { result: asyncName ? `${asyncName}: ${value}` : value };
  return value === undefined ? null : value;
}

export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}
