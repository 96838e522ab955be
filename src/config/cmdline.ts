import { readFileSync } from 'node:fs';

/**
 * The kernel command line as IPA reads it (spec §1.1): split on whitespace, every
 * `key=value` token becomes a parameter (split at the first `=`), tokens without `=` are
 * ignored, values are taken literally and a later token wins over an earlier one.
 */
export function parseKernelCmdline(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const token of text.split(/\s+/)) {
    const eq = token.indexOf('=');
    if (eq <= 0) continue;
    params.set(token.slice(0, eq), token.slice(eq + 1));
  }
  return params;
}

export function readKernelCmdline(path = '/proc/cmdline'): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the kernel command line from ${path}: ${(err as Error).message}`);
  }
  return parseKernelCmdline(text);
}
