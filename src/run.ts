import type { ExecaError } from 'execa';

export interface RunOptions {
  input?: string | Buffer;
  timeoutSeconds?: number;
  env?: Record<string, string>;
  /** Kills the tool when aborted (a step past its timeout). */
  signal?: AbortSignal;
  /** Called with each line the tool writes to stderr while it runs (progress of shred, nvme...). */
  onStderrLine?: (line: string) => void;
  /** Called with each line the tool writes to stdout while it runs. */
  onStdoutLine?: (line: string) => void;
  /** Start the tool with `env` only, not the agent's environment (tenant code must not see it). */
  cleanEnv?: boolean;
}

/** Runs an external tool with an argument array (never a shell) and returns its stdout. */
export type RunCommand = (file: string, args: readonly string[], opts?: RunOptions) => Promise<string>;

/** An external tool that is missing, timed out or exited non-zero, with what it said. */
export class ToolError extends Error {
  override name = 'ToolError';
  readonly tool: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(tool: string, message: string, exitCode?: number, stderr = '') {
    super(message);
    this.tool = tool;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }

  get missing(): boolean {
    return this.exitCode === undefined && /not installed/.test(this.message);
  }
}

/** execa is loaded on first use: its import costs about 70 ms that start-up does not need. */
let execaModule: Promise<typeof import('execa')> | undefined;

export const runCommand: RunCommand = async (file, args, opts = {}) => {
  const { execa } = await (execaModule ??= import('execa'));
  try {
    const subprocess = execa(file, args, {
      input: opts.input,
      timeout: opts.timeoutSeconds === undefined ? undefined : opts.timeoutSeconds * 1000,
      env: opts.env,
      extendEnv: !opts.cleanEnv,
      cancelSignal: opts.signal,
      stripFinalNewline: false,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (opts.onStderrLine) followLines(subprocess.stderr, opts.onStderrLine);
    if (opts.onStdoutLine) followLines(subprocess.stdout, opts.onStdoutLine);
    const result = await subprocess;
    return result.stdout;
  } catch (err) {
    throw toolError(file, args, err as ExecaError);
  }
};

/** Splits a stream into lines (LF or CR: progress meters rewrite their line with CR). */
function followLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  let pending = '';
  stream?.on('data', (chunk: Buffer | string) => {
    pending += chunk.toString();
    const parts = pending.split(/\r|\n/);
    pending = parts.pop() ?? '';
    for (const part of parts) if (part.trim() !== '') onLine(part);
  });
  stream?.on('end', () => {
    if (pending.trim() !== '') onLine(pending);
  });
}

function toolError(file: string, args: readonly string[], err: ExecaError): ToolError {
  if (err.code === 'ENOENT') return new ToolError(file, `${file} is not installed (needed for: ${file} ${args.join(' ')})`);
  const stderr = typeof err.stderr === 'string' ? err.stderr : '';
  const tail = stderr.trim().split('\n').slice(-5).join(' | ');
  const why = err.isCanceled ? 'was stopped (the step was cancelled or timed out)' : err.timedOut ? 'timed out' : err.signal ? `was killed by ${err.signal}` : `exited with ${err.exitCode}`;
  return new ToolError(file, `${file} ${args.join(' ')} ${why}${tail ? `: ${tail}` : ''}`, err.exitCode, stderr);
}

/** Like RunCommand, but stdout as the tool wrote it: for output that may not be UTF-8 (efibootmgr can print UTF-16). */
export type RunCommandBytes = (file: string, args: readonly string[], opts?: Pick<RunOptions, 'timeoutSeconds' | 'env' | 'signal'>) => Promise<Buffer>;

export const runCommandBytes: RunCommandBytes = async (file, args, opts = {}) => {
  const { execa } = await (execaModule ??= import('execa'));
  try {
    const result = await execa(file, args, {
      encoding: 'buffer',
      timeout: opts.timeoutSeconds === undefined ? undefined : opts.timeoutSeconds * 1000,
      env: opts.env,
      cancelSignal: opts.signal,
      stripFinalNewline: false,
      maxBuffer: 64 * 1024 * 1024,
    });
    return Buffer.from(result.stdout);
  } catch (err) {
    const e = err as ExecaError;
    // toolError reads stderr as text; with encoding 'buffer' it is bytes.
    const stderr = e.stderr instanceof Uint8Array ? Buffer.from(e.stderr).toString('utf8') : e.stderr;
    const { code, exitCode, signal, isCanceled, timedOut } = e;
    throw toolError(file, args, { code, exitCode, signal, isCanceled, timedOut, stderr } as ExecaError);
  }
};
