import { invalidCommandParams } from '../errors.ts';
import type { RunCommand } from '../run.ts';
import type { StepDefinition } from '../steps/types.ts';

export const DEFAULT_NVRAM_PATTERNS = ['^HD\\(', 'shim.*\\.efi', 'grub.*\\.efi'];

export interface BootRecord {
  number: string;
  label: string;
  path: string;
}

/** IPA's entry pattern for `efibootmgr -v` lines: `Boot0003* label<TAB>HD(1,GPT,...)/File(...)`. */
const ENTRY = /^Boot([0-9a-fA-F-]+)\*?\s+(.*?)\s+((?:BBS|HD|FvFile|FvVol|PciRoot|VenMsg|VenHw|UsbClass)\(.*)$/;

export function parseBootRecords(text: string): BootRecord[] {
  const records: BootRecord[] = [];
  for (const line of text.split('\n')) {
    const m = ENTRY.exec(line.trimEnd());
    if (m) records.push({ number: m[1]!, label: m[2]!, path: m[3]! });
  }
  return records;
}

/** `match_patterns` must be a list of valid regular expressions (IPA: InvalidCommandParamsError). */
export function compilePatterns(value: unknown): RegExp[] {
  const patterns = value === undefined || value === null ? DEFAULT_NVRAM_PATTERNS : value;
  const error = invalidCommandParams(`The match_patterns must be a list of strings: ${JSON.stringify(value)}`);
  if (!Array.isArray(patterns)) throw error;
  return patterns.map((p) => {
    if (typeof p !== 'string') throw error;
    try {
      return new RegExp(p, 'i');
    } catch {
      throw error;
    }
  });
}

/** clean_uefi_nvram: delete the boot entries whose device path matches a pattern (spec §8.4). */
export async function cleanUefiNvram(run: RunCommand, patterns: RegExp[]): Promise<{ removed: BootRecord[] }> {
  const records = parseBootRecords(await run('efibootmgr', ['-v']));
  const removed: BootRecord[] = [];
  for (const record of records) {
    if (!patterns.some((p) => p.test(record.path))) continue;
    await run('efibootmgr', ['-b', record.number, '-B']);
    removed.push(record);
  }
  return { removed };
}

const ARGSINFO = {
  match_patterns: {
    description: `Json blob contains a list of regex patterns where any UEFI NVRAM entry matching that pattern will be deleted. Default value is '["${DEFAULT_NVRAM_PATTERNS.join('", "')}"]'`,
    required: false,
  },
};

export const uefiNvramStep: StepDefinition = {
  step: 'clean_uefi_nvram',
  interface: 'deploy',
  kinds: { clean: { priority: 0, abortable: true }, deploy: { priority: 0 } },
  argsinfo: ARGSINFO,
  run: async (call, ctx) => {
    const patterns = compilePatterns(call.args.match_patterns);
    const result = await cleanUefiNvram(ctx.run, patterns);
    ctx.log.info({ removed: result.removed.map((r) => `Boot${r.number} ${r.label}`) }, 'UEFI NVRAM entries removed');
    return result;
  },
};
