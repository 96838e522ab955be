import type { AgentConfig } from './config.ts';
import type { ConductorState } from './conductor/state.ts';
import type { DiskGuard } from './hardware/disk-guard.ts';
import type { PowerControl } from './hardware/power.ts';
import type { Logger, LogRing } from './log.ts';
import type { RunCommand } from './run.ts';
import type { StepRegistry } from './steps/registry.ts';

/** Forgotten on every (simulated) reboot, like everything a ramdisk keeps in memory. */
export interface DeploymentState {
  /**
   * `{"root uuid": ..., "efi system partition uuid": ...}` of the last image written, plus
   * `partitions` (role -> path) for a partition image; `{}` before (spec §9.8).
   */
  partitionUuids: { [key: string]: string | null | undefined | Partial<Record<string, string>> };
  /** `image_info.id` of the image on disk, so a repeated prepare_image can skip the write (spec §7.1). */
  cachedImageId?: string | undefined;
  /**
   * md devices made by create/apply_configuration with their is_root_volume (IPA's
   * _raid_root_device_mapping): true makes the array the root device, false keeps the
   * array and its disks out of the choice (spec §11.5).
   */
  raidRootVolumes?: Record<string, boolean>;
}

/**
 * What commands and steps may use: the parsed configuration and a few services. Extensions
 * get this instead of reaching into the agent's internals.
 */
export interface AgentContext {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly logRing: LogRing;
  readonly version: string;
  /** Epoch seconds (float) when the process started, as GET /v1/status reports it. */
  readonly startedAt: number;
  readonly conductor: ConductorState;
  readonly steps: StepRegistry;
  readonly power: PowerControl;
  readonly diskGuard: DiskGuard;
  readonly run: RunCommand;
  /** What this boot wrote to disk; get_partition_uuids reports it (spec §9.8). */
  readonly deployment: DeploymentState;
  /** No ipa-api-url: no lookup and no heartbeat (IPA's standalone mode). */
  readonly standalone: boolean;
  /** Re-read the node from Ironic (lookup with node_uuid, spec §3.4); no-op when standalone. */
  refreshNode(): Promise<void>;
  /**
   * finalize_rescue succeeded: once its answer is out, stop serving the API and heartbeating
   * for good, as IPA does (spec §7.5); a simulated ramdisk waits for its next boot.
   */
  enterRescue(): void;
}
