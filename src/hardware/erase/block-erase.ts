import { AgentError, blockDeviceEraseError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { RunCommand } from '../../run.ts';
import { ataSecureErase } from './ata.ts';
import { isNvme, nvmeFormat } from './nvme.ts';
import type { EraseOptions } from './options.ts';
import type { ReadBack } from './report.ts';
import { shredDevice } from './shred.ts';

export interface EraseDeps {
  run: RunCommand;
  log: Logger;
}

/** What erased a device, and what a read-back should find there afterwards. */
export interface EraseMethod {
  method: string;
  expected: ReadBack['expected'];
  note?: string;
}

function isEraseError(err: unknown): err is AgentError {
  return err instanceof AgentError && err.type === 'BlockDeviceEraseError';
}

/**
 * IPA's erase_block_device after its skip checks (spec §11.1 steps 4-8): a secure erase
 * when the device offers one and the node allows it, else (or after a failed one, when
 * agent_continue_if_secure_erase_failed) shred. Where IPA's failure surfaces as "No
 * HardwareManager found to handle method" (§14.8), the real reason is reported.
 */
export async function eraseWholeDevice(deps: EraseDeps, device: string, opts: EraseOptions): Promise<EraseMethod> {
  let note: string | undefined;
  try {
    if (isNvme(device)) {
      if (opts.enableNvmeSecureErase) {
        const ses = await nvmeFormat(deps.run, device);
        return { method: ses === 2 ? 'nvme-format-crypto' : 'nvme-format-user-data', expected: 'vendor-defined' };
      }
      note = 'NVMe secure erase disabled by agent_enable_nvme_secure_erase';
    } else if (opts.enableAtaSecureErase) {
      const ata = await ataSecureErase(deps, device);
      // Normal erase writes binary zeroes (ATA8-ACS); enhanced writes the vendor's pattern.
      if (ata.erased) return ata.enhanced ? { method: 'ata-security-erase-enhanced', expected: 'vendor-defined' } : { method: 'ata-security-erase', expected: 'zeroes' };
      note = ata.reason;
    } else {
      note = 'ATA secure erase disabled by agent_enable_ata_secure_erase';
    }
  } catch (err) {
    if (!isEraseError(err)) throw err;
    if (!opts.continueIfSecureEraseFailed) {
      throw blockDeviceEraseError(`Failed to invoke secure erase, fallback to shred is not enabled: ${err.details}`);
    }
    deps.log.warn({ device, err: err.details }, 'secure erase failed, falling back to shred');
    note = `secure erase failed (${err.details}); shredded instead`;
  }
  const failure = await shredDevice(deps.run, deps.log, device, opts);
  if (failure !== undefined) throw blockDeviceEraseError(`Unable to erase block device ${device}: device is unsupported. ${failure}`);
  return { method: 'shred', expected: opts.zeroize ? 'zeroes' : 'random', ...(note ? { note } : {}) };
}
