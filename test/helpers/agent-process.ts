import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface AgentProcessOptions {
  /** Kernel parameters, as the ramdisk would have them on /proc/cmdline. */
  cmdline?: string;
  /** Extra flags after `agent`. */
  flags?: string[];
  /** Defaults to a free port; listen and advertise use the same one. */
  port?: number;
  /** The script Node runs: the TypeScript CLI by default, or the ramdisk's bundle. */
  entry?: string;
  /** Environment added to this process's (e.g. a podman sandbox's CONTAINERS_* variables). */
  env?: Record<string, string>;
}

/**
 * The agent as a separate process, the way the ramdisk runs it: `node src/cli.ts agent`
 * with a kernel command line file. Its JSON log lines are collected for assertions.
 */
export class AgentProcess {
  readonly port: number;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  private readonly child: ChildProcess;
  private readonly dir: string;
  private readonly exited: Promise<number | null>;
  private waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  private constructor(child: ChildProcess, port: number, dir: string) {
    this.child = child;
    this.port = port;
    this.dir = dir;
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (text.trim() === '') continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { level: 0, msg: text };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static async start(opts: AgentProcessOptions = {}): Promise<AgentProcess> {
    const port = opts.port ?? (await freePort());
    const dir = await mkdtemp(join(tmpdir(), 'ina-agent-'));
    const cmdlineFile = join(dir, 'cmdline');
    await writeFile(cmdlineFile, `${opts.cmdline ?? ''}\n`);
    const args = [
      opts.entry ?? CLI, 'agent', '--cmdline-file', cmdlineFile,
      '--listen-host', '127.0.0.1', '--listen-port', String(port), '--advertise-port', String(port),
      '--state-dir', join(dir, 'state'),
      // Even without --simulate-power a test's finalize_rescue never writes this machine's /etc.
      ...(opts.flags?.includes('--rescue-marker-file') ? [] : ['--rescue-marker-file', join(dir, 'rescue', 'rescued')]),
      ...(opts.flags?.includes('--rescue-password-file') ? [] : ['--rescue-password-file', join(dir, 'rescue', 'ipa-rescue-password')]),
      ...(opts.flags ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    return new AgentProcess(child, port, dir);
  }

  /** The private directory of this agent: its state dir and rescue files are under it. */
  get directory(): string {
    return this.dir;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first log line (already seen or future) that passes `test`. */
  waitForLog(test: (l: LogLine) => boolean, timeoutMs = 30_000, what = 'log line'): Promise<LogLine> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`agent did not log ${what} within ${timeoutMs} ms; last lines:\n${this.tail()}`));
      }, timeoutMs);
      const done = (l: LogLine) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.waiters.push({ test, resolve: done });
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (${code}) before logging ${what}:\n${this.tail()}\n${this.stderr.join('')}`));
      });
    });
  }

  waitForMessage(msg: string | RegExp, timeoutMs?: number): Promise<LogLine> {
    const test = typeof msg === 'string' ? (l: LogLine) => l.msg === msg : (l: LogLine) => msg.test(l.msg);
    return this.waitForLog(test, timeoutMs, String(msg));
  }

  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  tail(n = 25): string {
    return this.lines.slice(-n).map((l) => JSON.stringify(l).slice(0, 400)).join('\n');
  }

  /** Resolves with the exit code. */
  wait(): Promise<number | null> {
    return this.exited;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
    return this.child.exitCode;
  }
}
