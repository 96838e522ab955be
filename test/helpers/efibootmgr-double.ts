import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DoubleState } from '../fixtures/efibootmgr/efibootmgr.ts';

export type { DoubleEntry, DoubleState } from '../fixtures/efibootmgr/efibootmgr.ts';

const DOUBLE = join(import.meta.dirname, '../fixtures/efibootmgr/efibootmgr.ts');

/**
 * The efibootmgr double (test/fixtures/efibootmgr) as an executable in `dir`, run by this
 * project's Node. With `state`, it has "NVRAM" in `dir`/nvram.json; without, it answers as
 * efibootmgr does on a machine without efivars (this one).
 */
export function efibootmgrDouble(dir: string, state?: DoubleState) {
  const bin = join(dir, 'efibootmgr');
  const statePath = join(dir, 'nvram.json');
  const env = state ? `EFIBOOTMGR_DOUBLE_STATE='${statePath}' ` : '';
  writeFileSync(bin, `#!/bin/sh\n${env}EFIBOOTMGR_DOUBLE_ARGV0="$0" exec '${process.execPath}' '${DOUBLE}' "$@"\n`);
  chmodSync(bin, 0o755);
  if (state) writeFileSync(statePath, JSON.stringify(state));
  return {
    bin,
    statePath,
    state: (): DoubleState => JSON.parse(readFileSync(statePath, 'utf8')) as DoubleState,
    setState: (s: DoubleState) => writeFileSync(statePath, JSON.stringify(s)),
    calls: (): Array<{ argv: string[]; exit: number }> =>
      existsSync(`${statePath}.calls`)
        ? readFileSync(`${statePath}.calls`, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { argv: string[]; exit: number })
        : [],
  };
}
