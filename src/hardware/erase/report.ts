/** What the agent did to one device during an erase step: the erase report (README "Erase report"). */
export interface DeviceReport {
  device: string;
  /**
   * `metadata` (wipefs + zeroed ends + sgdisk -Z), `shred`, `nvme-format-crypto`,
   * `nvme-format-user-data`, `ata-security-erase`, `ata-security-erase-enhanced`, or `skipped`.
   */
  method: string;
  /** Why the device was skipped, or why a secure erase gave way to a fallback. */
  note?: string;
  /** Bytes the method overwrote or erased (a secure erase covers the whole device). */
  bytes_covered: number;
  size: number;
  duration_s: number;
  /** Signature types found before the erase (wipefs), for the metadata method. */
  signatures_removed?: string[];
  read_back?: ReadBack;
}

/** A sample read back from the device after the erase. */
export interface ReadBack {
  /** What the method leaves behind: zeroes, random data (shred without --zero) or what the firmware chooses. */
  expected: 'zeroes' | 'random' | 'vendor-defined';
  samples: number;
  sampled_bytes: number;
  all_zero: boolean;
  /** First byte offset that read non-zero, when one did. */
  first_nonzero_offset?: number;
}

export function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
