import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ToolOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a host tool (ssh, ssh-keygen) to its end: a failure is its exit code, never a throw. */
export function runTool(file: string, args: string[], opts: { timeoutSeconds?: number; env?: Record<string, string> } = {}): Promise<ToolOutcome> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: (opts.timeoutSeconds ?? 60) * 1000, encoding: 'utf8', env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** A fresh ed25519 key pair without passphrase in `dir`; `public` is the OpenSSH line. */
export async function sshKeyPair(dir: string, name: string): Promise<{ private: string; public: string }> {
  const path = join(dir, name);
  const r = await runTool('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@conductor`, '-f', path]);
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return { private: path, public: (await readFile(`${path}.pub`, 'utf8')).trim() };
}
