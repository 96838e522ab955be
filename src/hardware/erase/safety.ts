import { protectedDevice } from '../../errors.ts';
import type { RunCommand } from '../../run.ts';
import { probeDevice } from '../blkid.ts';
import { kernelPartitions, readPartitionTable } from '../partitions.ts';

/**
 * Identifiers of shared-disk cluster filesystems: wiping one from a single machine can take
 * a whole cluster's volume with it (spec §11.4). GPT type GUIDs, MBR type codes, fs types.
 */
const GUARDED_IDS: Record<string, string> = {
  '37affc90-ef7d-4e96-91c3-2d7ae055b174': 'IBM GPFS Partition',
  'aa31e02a-400f-11db-9590-000c2911d1b8': 'VMware VMFS Partition (GPT)',
  '0xfb': 'VMware VMFS Partition (MBR)',
};
const GUARDED_FS_TYPES: Record<string, string> = { gfs2: 'Red Hat Global File System 2' };

/** `fb`, `0xFB` and `0xfb` all name the MBR type 0xfb; GUIDs compare without case. */
function normaliseId(id: string): string {
  const v = id.trim().toLowerCase();
  return /^(0x)?[0-9a-f]{1,2}$/.test(v) ? `0x${v.replace(/^0x/, '').padStart(2, '0')}` : v;
}

export function protectedWhat(ids: readonly (string | null | undefined)[], fsTypes: readonly (string | null | undefined)[]): string | undefined {
  for (const id of ids) {
    if (!id) continue;
    const what = GUARDED_IDS[normaliseId(id)];
    if (what) return what;
  }
  for (const fs of fsTypes) {
    const what = fs ? GUARDED_FS_TYPES[fs.toLowerCase()] : undefined;
    if (what) return what;
  }
  return undefined;
}

export function protectedDeviceError(device: string, what: string) {
  return protectedDevice(
    `Protected ${what} located on device ${device}. This volume or contents may be a shared block device. ` +
      'Please consult your storage administrator, and restart cleaning after either detaching the volumes, ' +
      'or instructing the agent to not protect contents (driver_internal_info.wipe_special_filesystems=false).',
  );
}

/**
 * IPA's shared-filesystem guard (spec §11.4), made thorough: IPA asks lsblk about the device
 * alone, which without udev knows no IDs at all. Here the device, each partition node the
 * kernel registered, and the on-disk partition table (which does not need the kernel to
 * have registered anything) are read with blkid -p and sfdisk. Throws ProtectedDeviceError.
 */
export async function checkSpecialFilesystems(run: RunCommand, device: string, sysRoot?: string): Promise<void> {
  const targets = [device, ...(await kernelPartitions(device, sysRoot)).map((p) => p.name)];
  for (const target of targets) {
    const probe = await probeDevice(run, target);
    const what = protectedWhat([probe.UUID, probe.PTUUID, probe.PART_ENTRY_TYPE, probe.PART_ENTRY_UUID], [probe.TYPE]);
    if (what) throw protectedDeviceError(target === device ? device : `${device} (partition ${target})`, what);
  }
  const table = await readPartitionTable(run, device).catch(() => undefined);
  for (const p of table?.partitions ?? []) {
    const what = protectedWhat([p.type, p.uuid], []);
    if (what) throw protectedDeviceError(`${device} (partition ${p.node})`, what);
  }
}
