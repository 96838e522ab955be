import { z } from 'zod';
import { invalidCommandParams } from '../../errors.ts';
import type { NodeDict } from '../../steps/types.ts';

/** The erase flags Ironic puts into driver_internal_info before cleaning (spec §11). */
export interface EraseOptions {
  iterations: number;
  zeroize: boolean;
  continueIfSecureEraseFailed: boolean;
  enableNvmeSecureErase: boolean;
  enableAtaSecureErase: boolean;
  concurrency: number;
  skipReadOnly: boolean;
  wipeSpecialFilesystems: boolean;
}

/** Ironic sends JSON booleans; older conductors and hand-edited nodes may send strings. */
const flag = z.union([z.boolean(), z.enum(['true', 'false', 'True', 'False', '1', '0']).transform((v) => v === 'true' || v === 'True' || v === '1')]);
const count = (min: number) => z.union([z.number().int().min(min), z.string().regex(/^\d+$/).transform(Number).pipe(z.number().min(min))]);

const Info = z.looseObject({
  agent_erase_devices_iterations: count(0).nullish(),
  agent_erase_devices_zeroize: flag.nullish(),
  agent_continue_if_secure_erase_failed: flag.nullish(),
  agent_continue_if_ata_erase_failed: flag.nullish(),
  agent_enable_nvme_secure_erase: flag.nullish(),
  agent_enable_ata_secure_erase: flag.nullish(),
  disk_erasure_concurrency: count(1).nullish(),
  agent_erase_skip_read_only: flag.nullish(),
  wipe_special_filesystems: flag.nullish(),
});

/**
 * The flags with IPA's defaults (its own concurrency default is 1; the conductor sends 4).
 * A flag of the wrong type is InvalidCommandParamsError naming it, and nothing is erased.
 */
export function eraseOptions(node: NodeDict | undefined): EraseOptions {
  const raw = node?.driver_internal_info;
  const parsed = Info.safeParse(typeof raw === 'object' && raw !== null ? raw : {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `driver_internal_info.${i.path.join('.')}: ${i.message}`);
    throw invalidCommandParams(`invalid erase settings: ${problems.join('; ')}`);
  }
  const i = parsed.data;
  return {
    iterations: i.agent_erase_devices_iterations ?? 1,
    zeroize: i.agent_erase_devices_zeroize ?? true,
    // The legacy name counts only when the new one is absent (IPA, spec §11 table).
    continueIfSecureEraseFailed: i.agent_continue_if_secure_erase_failed ?? i.agent_continue_if_ata_erase_failed ?? false,
    enableNvmeSecureErase: i.agent_enable_nvme_secure_erase ?? true,
    enableAtaSecureErase: i.agent_enable_ata_secure_erase ?? true,
    concurrency: i.disk_erasure_concurrency ?? 1,
    skipReadOnly: i.agent_erase_skip_read_only ?? false,
    wipeSpecialFilesystems: i.wipe_special_filesystems ?? true,
  };
}
