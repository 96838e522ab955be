import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './ports.ts';

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * A software TPM 2.0 in socket mode on 127.0.0.1 (spec/bootc.md §5.2: the kernel here has no
 * TPM driver, CUSE or vTPM proxy). Fresh state per instance; PCRs start at zero.
 */
export class Swtpm {
  readonly port: number;
  readonly dir: string;
  private readonly child: ChildProcess;

  private constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port;
    this.dir = dir;
    this.child = child;
  }

  static async start(): Promise<Swtpm> {
    const dir = mkdtempSync(join(tmpdir(), 'ina-swtpm-'));
    // The swtpm TCTI talks to the control channel on port + 1.
    let port = await freePort();
    while (!(await canBind(port + 1))) port = await freePort();
    const ctrl = port + 1;
    const child = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}`,
      '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
      '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' });
    const tpm = new Swtpm(port, dir, child);
    for (let i = 0; !(await listening(port)); i++) {
      if (i > 100) {
        tpm.stop();
        throw new Error('swtpm did not start');
      }
      await delay(100);
    }
    return tpm;
  }

  /** What systemd (SYSTEMD_TPM2_DEVICE) and tpm2-tools (TPM2TOOLS_TCTI) are given. */
  get tcti(): string {
    return `swtpm:host=127.0.0.1,port=${this.port}`;
  }

  tpm2(tool: string, args: string[]): string {
    return execFileSync(tool, args, { encoding: 'utf8', env: { ...process.env, TPM2TOOLS_TCTI: this.tcti }, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** No resource manager: transient objects and sessions must be flushed by hand (§5.2). */
  flush(): void {
    this.tpm2('tpm2_flushcontext', ['-t']);
    this.tpm2('tpm2_flushcontext', ['-l']);
    this.tpm2('tpm2_flushcontext', ['-s']);
  }

  /** Simulates a different boot chain: the sealed policy (PCR 7) no longer matches. */
  extendPcr7(): void {
    this.tpm2('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`]);
  }

  /**
   * Unseals the key of a LUKS2 volume's `systemd-tpm2` token in user space (spec/bootc.md §5.3:
   * no device-mapper here), returning the passphrase systemd-cryptsetup would use.
   */
  unsealLuksToken(device: string): string {
    const meta = JSON.parse(execFileSync('cryptsetup', ['luksDump', '--dump-json-metadata', device], { encoding: 'utf8' })) as {
      tokens: Record<string, { type: string; 'tpm2-blob': string; 'tpm2-pcrs': number[]; 'tpm2-pcr-bank': string }>;
    };
    const token = Object.values(meta.tokens).find((t) => t.type === 'systemd-tpm2');
    if (!token) throw new Error(`${device} has no systemd-tpm2 token`);
    const blob = Buffer.from(token['tpm2-blob'], 'base64');
    // TPM2B_PRIVATE then TPM2B_PUBLIC, each with its 2-byte size.
    const privLen = 2 + blob.readUInt16BE(0);
    const w = mkdtempSync(join(tmpdir(), 'ina-unseal-'));
    try {
      writeFileSync(join(w, 'priv'), blob.subarray(0, privLen));
      writeFileSync(join(w, 'pub'), blob.subarray(privLen));
      const ctx = (n: string) => join(w, n);
      this.tpm2('tpm2_createprimary', ['-Q', '-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb',
        '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt', '-c', ctx('prim.ctx')]);
      this.tpm2('tpm2_flushcontext', ['-t']);
      this.tpm2('tpm2_load', ['-Q', '-C', ctx('prim.ctx'), '-u', ctx('pub'), '-r', ctx('priv'), '-c', ctx('obj.ctx')]);
      this.tpm2('tpm2_flushcontext', ['-t']);
      this.tpm2('tpm2_startauthsession', ['-Q', '--policy-session', '-S', ctx('s.ctx')]);
      try {
        this.tpm2('tpm2_policypcr', ['-Q', '-S', ctx('s.ctx'), '-l', `${token['tpm2-pcr-bank']}:${token['tpm2-pcrs'].join(',')}`]);
        const secret = execFileSync('tpm2_unseal', ['-c', ctx('obj.ctx'), '-p', `session:${ctx('s.ctx')}`], {
          env: { ...process.env, TPM2TOOLS_TCTI: this.tcti }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        // systemd-cryptenroll enrolls the base64 of the unsealed secret as the passphrase.
        return secret.toString('base64');
      } finally {
        this.flush();
      }
    } finally {
      rmSync(w, { recursive: true, force: true });
    }
  }

  stop(): void {
    this.child.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether the LUKS header accepts `passphrase` (no device-mapper needed). */
export function testPassphrase(device: string, passphrase: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'ina-pass-'));
  try {
    writeFileSync(join(dir, 'key'), passphrase, { mode: 0o600 });
    execFileSync('cryptsetup', ['open', '--test-passphrase', '--key-file', join(dir, 'key'), device], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
