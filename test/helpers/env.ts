import { existsSync } from 'node:fs';

/** CI runs as root with every prerequisite installed by .ci/run: nothing may be skipped there. */
export const inCI = process.env.CI === 'true';
export const isRoot = process.getuid?.() === 0;

/**
 * Whether a test group can run here. Outside CI a missing prerequisite skips the group with
 * the reason; in CI it fails loudly, because .ci/run should have provided it.
 */
export function prerequisite(what: string, ok: boolean): boolean {
  if (ok) return true;
  if (inCI) throw new Error(`CI must not skip: ${what} is missing (.ci/run should install it)`);
  process.stderr.write(`skipping: ${what} is missing\n`);
  return false;
}

export function hasTool(path: string): boolean {
  return existsSync(path);
}
