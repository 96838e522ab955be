import { readFileSync } from 'node:fs';
import { ToolError, type RunCommand } from '../../src/run.ts';

const FIXTURES = new URL('../fixtures/hardware/', import.meta.url);
export const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

/** ATA security state as hdparm reports it (ATA8-ACS SEC1..SEC6). */
export interface AtaState {
  supported: boolean;
  enabled: boolean;
  locked: boolean;
  frozen: boolean;
  enhanced: boolean;
  /** The user password a previous attempt left, if any. */
  password?: string;
  /** The erase command fails (a drive that aborts it). */
  eraseFails?: boolean;
}

/**
 * A SATA drive behind hdparm and smartctl: answers `hdparm -I` from the recorded template with
 * the current security state, and changes state on the security commands with the rules of the
 * ATA security feature set (erase needs the password set, unlock needs the password, frozen
 * refuses everything). Arguments are checked as hdparm parses them; anything else is an error.
 */
export class FakeAtaDrive {
  readonly calls: string[][] = [];
  readonly state: AtaState;
  smartctl: 'ok' | 'unavailable' | 'fails' | 'missing' = 'ok';

  readonly device: string;

  constructor(device: string, state: Partial<AtaState> = {}) {
    this.device = device;
    this.state = { supported: true, enabled: false, locked: false, frozen: false, enhanced: true, ...state };
  }

  hdparmI(): string {
    const s = this.state;
    const lines = [
      `\t${s.supported ? '\t' : 'not\t'}supported`,
      `\t${s.enabled ? '\t' : 'not\t'}enabled`,
      `\t${s.locked ? '\t' : 'not\t'}locked`,
      `\t${s.frozen ? '\t' : 'not\t'}frozen`,
    ].join('\n');
    return fixture('hdparm-I-ata-ssd.template.txt')
      .replace('/dev/sda', this.device)
      .replace('{{SECURITY}}', lines)
      .replace('{{ENHANCED}}', `\t${this.state.enhanced ? '\t' : 'not\t'}supported: enhanced erase`);
  }

  readonly run: RunCommand = async (file, args) => {
    this.calls.push([file, ...args]);
    if (file === 'smartctl') return this.smartctlRun(args);
    if (file !== 'hdparm') throw new ToolError(file, `${file} is not installed (test double)`);
    if (args.length === 2 && args[0] === '-I' && args[1] === this.device) return this.hdparmI();
    const [flag, who, op, password, dev, ...rest] = args;
    if (flag !== '--user-master' || (who !== 'u' && who !== 'm') || dev !== this.device || rest.length > 0 || password === undefined) {
      throw new ToolError('hdparm', `hdparm ${args.join(' ')} exited with 1: unexpected arguments`, 1);
    }
    const s = this.state;
    const fail = (why: string) => {
      throw new ToolError('hdparm', `hdparm ${args.join(' ')} exited with 5: ${why}`, 5);
    };
    if (s.frozen) fail('SECURITY command aborted: device frozen');
    switch (op) {
      case '--security-unlock':
        if (!s.locked) return '';
        if (password !== s.password) fail('Input/output error');
        s.locked = false;
        return '';
      case '--security-set-pass':
        if (s.locked) fail('Input/output error');
        s.enabled = true;
        s.password = password;
        return '';
      case '--security-erase':
      case '--security-erase-enhanced':
        if (op === '--security-erase-enhanced' && !s.enhanced) fail('enhanced erase not supported');
        if (!s.enabled || password !== s.password) fail('Input/output error');
        if (s.eraseFails) {
          // A drive that aborts mid-erase stays locked with the password set.
          s.locked = true;
          fail('Input/output error');
        }
        s.enabled = false;
        s.locked = false;
        delete s.password;
        return '';
      default:
        return fail(`unknown option ${op}`);
    }
  };

  private smartctlRun(args: readonly string[]): string {
    if (args.join(' ') !== `-d ata ${this.device} -g security`) throw new ToolError('smartctl', `smartctl ${args.join(' ')}: unexpected arguments`, 1);
    if (this.smartctl === 'missing') throw new ToolError('smartctl', 'smartctl is not installed (needed for: smartctl)');
    if (this.smartctl === 'fails') throw new ToolError('smartctl', 'smartctl exited with 2: Read Device Identity failed', 2);
    return fixture(this.smartctl === 'ok' ? 'smartctl-security-sec1.txt' : 'smartctl-security-unavailable.txt');
  }
}

/** An NVMe controller behind nvme-cli: `id-ctrl -o json` from a recording, `format -s N -f` checked. */
export class FakeNvme {
  readonly calls: string[][] = [];
  formatFails = false;

  readonly device: string;
  readonly idCtrl: string;

  constructor(device: string, idCtrl: string) {
    this.device = device;
    this.idCtrl = idCtrl;
  }

  readonly run: RunCommand = async (file, args) => {
    this.calls.push([file, ...args]);
    if (file !== 'nvme') throw new ToolError(file, `${file} is not installed (test double)`);
    if (args.join(' ') === `id-ctrl ${this.device} -o json`) return this.idCtrl;
    if (args[0] === 'format' && args[1] === this.device && args[2] === '-s' && /^[0-2]$/.test(args[3] ?? '') && args[4] === '-f' && args.length === 5) {
      if (this.formatFails) throw new ToolError('nvme', 'nvme format exited with 1: NVMe status: INVALID_FORMAT', 1);
      return 'Success formatting namespace:1\n';
    }
    throw new ToolError('nvme', `nvme ${args.join(' ')}: unexpected arguments`, 1);
  };
}
