import { z } from 'zod';
import { blockDeviceEraseError } from '../../errors.ts';
import type { RunCommand } from '../../run.ts';

/** oacs bit 1: the controller supports Format NVM; fna bit 2: cryptographic erase (NVMe base spec). */
const OACS_FORMAT = 0x2;
const FNA_CRYPTO_ERASE = 0x4;

const IdCtrl = z.looseObject({ oacs: z.number().int(), fna: z.number().int() });

/** Secure erase setting for `nvme format -s`: 2 crypto erase, 1 user-data erase (spec §11.1 step 4). */
export type NvmeSes = 1 | 2;

/** `nvme id-ctrl <dev> -o json`; an empty answer or one without oacs/fna is an erase error. */
export function parseIdCtrl(device: string, json: string): { oacs: number; fna: number } {
  if (json.trim() === '') throw blockDeviceEraseError(`nvme-cli did not return any information for device: ${device}`);
  try {
    return IdCtrl.parse(JSON.parse(json));
  } catch (err) {
    throw blockDeviceEraseError(`unexpected nvme id-ctrl output for device ${device}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function chooseSes(device: string, idCtrl: { oacs: number; fna: number }): NvmeSes {
  if ((idCtrl.oacs & OACS_FORMAT) === 0) {
    throw blockDeviceEraseError(`nvme-cli did not return any supported format modes for device: ${device}`);
  }
  return (idCtrl.fna & FNA_CRYPTO_ERASE) !== 0 ? 2 : 1;
}

export function isNvme(device: string): boolean {
  return device.startsWith('/dev/nvme');
}

/**
 * NVMe secure format with the strongest setting the controller offers. Every failure is
 * BlockDeviceEraseError (the caller decides about the shred fallback); a missing nvme-cli
 * says so instead of IPA's bare exception.
 */
export async function nvmeFormat(run: RunCommand, device: string): Promise<NvmeSes> {
  let json: string;
  try {
    json = await run('nvme', ['id-ctrl', device, '-o', 'json']);
  } catch (err) {
    throw blockDeviceEraseError(`Failed to fetch NVMe capabilities for device ${device}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const ses = chooseSes(device, parseIdCtrl(device, json));
  try {
    await run('nvme', ['format', device, '-s', String(ses), '-f']);
  } catch (err) {
    throw blockDeviceEraseError(`Failed to nvme format device ${device}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return ses;
}
