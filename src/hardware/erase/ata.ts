import { blockDeviceEraseError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { ToolError, type RunCommand } from '../../run.ts';

/**
 * The lines of the `Security:` section of `hdparm -I`, tabs turned into spaces and trimmed:
 * `supported`, `not enabled`, `not locked`, `not frozen`, `supported: enhanced erase`...
 * No section (a disk that is not ATA, a loop device) gives no lines.
 */
export function ataSecurityLines(hdparmOutput: string): string[] {
  const at = hdparmOutput.indexOf('\nSecurity: \n');
  if (at < 0) return [];
  const lines: string[] = [];
  for (const line of hdparmOutput.slice(at + '\nSecurity: \n'.length).split('\n')) {
    if (!line.startsWith('\t')) break;
    lines.push(line.trim().replace(/\t/g, ' '));
  }
  return lines;
}

export type AtaOutcome = { erased: false; reason: string } | { erased: true; enhanced: boolean };

interface AtaDeps {
  run: RunCommand;
  log: Logger;
}

async function securityLines(deps: AtaDeps, device: string): Promise<string[]> {
  try {
    return ataSecurityLines(await deps.run('hdparm', ['-I', device]));
  } catch (err) {
    if (err instanceof ToolError && err.missing) throw blockDeviceEraseError(`hdparm is not installed: cannot check ATA security of ${device}`);
    throw blockDeviceEraseError(`hdparm -I ${device} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Whether smartctl can talk ATA to the device (IPA: a bridge it does not understand makes
 * secure erase unsafe). A missing smartctl is tolerated, as IPA tolerates it.
 */
export async function smartctlAllowsAta(deps: AtaDeps, device: string): Promise<boolean> {
  try {
    const out = await deps.run('smartctl', ['-d', 'ata', device, '-g', 'security']);
    return !out.includes('Unavailable');
  } catch (err) {
    if (err instanceof ToolError && (err.missing || err.exitCode === 127)) {
      deps.log.warn({ device }, 'smartctl is not installed; trusting hdparm alone for ATA security');
      return true;
    }
    deps.log.warn({ device, err: String(err) }, 'direct ATA commands via smartctl do not succeed: no ATA secure erase');
    return false;
  }
}

/** Unlock with the passwords a previous failed attempt may have left: NULL, then empty (hdparm < 9.51). */
async function attemptUnlock(deps: AtaDeps, device: string, lines?: string[]): Promise<string[]> {
  let current = lines ?? (await securityLines(deps, device));
  for (const password of ['NULL', '']) {
    if (current.includes('not locked')) break;
    try {
      await deps.run('hdparm', ['--user-master', 'u', '--security-unlock', password, device]);
    } catch (err) {
      deps.log.info({ device, password, err: String(err) }, 'ATA security unlock failed');
    }
    current = await securityLines(deps, device);
  }
  return current;
}

/**
 * ATA secure erase with IPA's checks (spec §11.1 step 5). Not applicable (no Security
 * section, not supported, smartctl says no): `{erased: false}` and the caller shreds.
 * Supported but frozen, locked, or failing: BlockDeviceEraseError.
 */
export async function ataSecureErase(deps: AtaDeps, device: string): Promise<AtaOutcome> {
  let lines = await securityLines(deps, device);
  if (!(await smartctlAllowsAta(deps, device))) return { erased: false, reason: 'smartctl cannot query ATA security' };
  if (!lines.includes('supported')) return { erased: false, reason: 'ATA security erase not supported' };
  // Security states of the ATA standard: SEC2/SEC6 are frozen.
  if (!lines.includes('not frozen')) throw blockDeviceEraseError(`Block device ${device} is frozen and cannot be erased`);
  lines = await attemptUnlock(deps, device, lines);
  if (!lines.includes('not locked')) throw blockDeviceEraseError(`Block device ${device} already has a security password set`);
  if (lines.includes('not enabled')) {
    // SEC1 -> SEC5: an erase needs a user password; NULL is the one IPA uses.
    try {
      await deps.run('hdparm', ['--user-master', 'u', '--security-set-pass', 'NULL', device]);
    } catch (err) {
      throw blockDeviceEraseError(`Security password set failed for device ${device}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const enhanced = !lines.includes('not supported: enhanced erase');
  try {
    await deps.run('hdparm', ['--user-master', 'u', enhanced ? '--security-erase-enhanced' : '--security-erase', 'NULL', device]);
  } catch (err) {
    // A drive left in SEC5 refuses all I/O: unlock so that a shred fallback can work.
    await attemptUnlock(deps, device);
    throw blockDeviceEraseError(`Erase failed for device ${device}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!(await securityLines(deps, device)).includes('not enabled')) {
    throw blockDeviceEraseError(`An unknown error occurred erasing block device ${device}`);
  }
  return { erased: true, enhanced };
}
