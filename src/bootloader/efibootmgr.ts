import { parseBootRecords, type BootRecord } from '../hardware/uefi-nvram.ts';
import type { RunCommandBytes } from '../run.ts';

export type { BootRecord };

/**
 * `efibootmgr -v` output as IPA's get_boot_records reads it: first as UTF-16 (Python's
 * 'utf-16': a BOM decides the byte order, little-endian without one; undecodable bytes
 * dropped), kept only if some line then starts with "BootCurrent: "; otherwise as UTF-8.
 * efibootmgr 17 prints UTF-8; IPA's UTF-16 branch exists for builds that printed UCS-2.
 */
export function decodeEfibootmgrOutput(out: Buffer): string {
  let body = out;
  let bigEndian = false;
  if (out.length >= 2 && out[0] === 0xff && out[1] === 0xfe) body = out.subarray(2);
  else if (out.length >= 2 && out[0] === 0xfe && out[1] === 0xff) {
    body = out.subarray(2);
    bigEndian = true;
  }
  const even = Buffer.from(body.subarray(0, body.length - (body.length % 2)));
  const utf16 = stripReplacement(new TextDecoder('utf-16le').decode(bigEndian ? even.swap16() : even));
  if (utf16.split('\n').some((line) => line.startsWith('BootCurrent: '))) return utf16;
  return stripReplacement(new TextDecoder('utf-8').decode(out));
}

/** Python's errors='ignore' drops what it cannot decode; TextDecoder marks it with U+FFFD. */
function stripReplacement(text: string): string {
  return text.replace(/\uFFFD/g, '');
}

/** IPA's add_boot_record argv: `efibootmgr -v -c -d <disk> -p <n> -w -L <label> -l <loader>`. */
export function createEntryArgs(disk: string, partNumber: number, label: string, loader: string): string[] {
  return ['-v', '-c', '-d', disk, '-p', String(partNumber), '-w', '-L', label, '-l', loader];
}

/** IPA's remove_boot_record argv. */
export function deleteEntryArgs(bootNum: string): string[] {
  return ['-b', bootNum, '-B'];
}

/** efibootmgr as the installers use it: one binary (a double in tests), bytes in, records out. */
export class Efibootmgr {
  private readonly bin: string;
  private readonly runBytes: RunCommandBytes;
  private readonly signal: AbortSignal | undefined;

  constructor(bin: string, runBytes: RunCommandBytes, signal?: AbortSignal) {
    this.bin = bin;
    this.runBytes = runBytes;
    this.signal = signal;
  }

  async records(): Promise<BootRecord[]> {
    return parseBootRecords(decodeEfibootmgrOutput(await this.runBytes(this.bin, ['-v'], this.opts())));
  }

  async remove(bootNum: string): Promise<void> {
    await this.runBytes(this.bin, deleteEntryArgs(bootNum), this.opts());
  }

  async create(disk: string, partNumber: number, label: string, loader: string): Promise<void> {
    await this.runBytes(this.bin, createEntryArgs(disk, partNumber, label, loader), this.opts());
  }

  /** IPA probes with `efibootmgr --version` and treats only a missing binary as "not available". */
  async version(): Promise<string> {
    return (await this.runBytes(this.bin, ['--version'], this.opts())).toString('utf8').trim();
  }

  private opts() {
    return { timeoutSeconds: 60, signal: this.signal };
  }
}
