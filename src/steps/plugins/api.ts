/**
 * The contract between the agent and an operator plugin: what a plugin module exports and
 * what its steps receive. Plugin authors import these types only (`import type`), which
 * Node's type stripping erases, so a .ts plugin runs in the ramdisk without this file.
 *
 * A plugin is an ES module whose default export (or export named `provider`) is a
 * PluginProvider. See README "Operator plugins".
 */
import type { AgentConfig } from '../../config.ts';
import type { BlockDevice } from '../../hardware/block-devices.ts';
import type { ArgType } from '../types.ts';

export type { AgentConfig, ArgType, BlockDevice };

export interface PluginArgInfo {
  description: string;
  required?: boolean;
  /** Checked by the agent before the step runs; not sent to Ironic. */
  type?: ArgType;
}

export interface PluginStepOffer {
  /**
   * deploy: 0 (only when requested through deploy_steps or a deploy template) or 61-99
   * (81-99 before an image would be written, 61-79 after; spec §8.6).
   * clean and service: any integer >= 0 (0: only when requested).
   */
  priority: number;
  /** clean and service steps: whether an operator may abort the step while it runs. */
  abortable?: boolean;
}

export interface PluginStep {
  /** The name Ironic schedules and sends back: letters, digits and underscores. */
  step: string;
  /** The Ironic interface that owns the step: deploy (almost always) or raid, bios, management, firmware. */
  interface: 'deploy' | 'raid' | 'bios' | 'management' | 'firmware';
  deploy?: PluginStepOffer;
  clean?: PluginStepOffer;
  service?: PluginStepOffer;
  /** Ironic reboots the node after the step succeeds (spec §8.1). */
  reboot_requested?: boolean;
  /** Arguments, as Ironic's argsinfo: `args` of the step call must match (required, known, typed). */
  argsinfo?: Record<string, PluginArgInfo>;
  /** Seconds before the step fails and its signal is aborted; default ina-plugin-step-timeout. */
  timeout?: number;
  run(args: Record<string, unknown>, ctx: PluginContext): unknown;
}

export interface PluginProvider {
  /** Keys hardware_manager_version and the get_*_steps result, as a hardware manager's name does. */
  name: string;
  version: string;
  /**
   * IPA's hardware support level (spec §8.2): the highest level wins a step name. Default 3
   * (SERVICE_PROVIDER): above the built-in steps (GENERIC 1, containers MAINLINE 2), so a
   * plugin step named like a built-in one replaces it, as IPA's custom hardware managers do.
   */
  supportLevel?: number;
  steps: PluginStep[];
}

export interface PluginLogger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/**
 * The agent's image writer: write `imageInfo` (Ironic's image_info, spec §9.1: whole-disk or
 * partition image) to `device` with the agent's streaming, verifying,
 * never-bootable-until-verified pipeline, after the disk guard allowed the device. Resolves
 * to the partition UUIDs (get_partition_uuids' shape); fails with the agent's errors.
 */
export interface ImageWriter {
  writeImage(imageInfo: Record<string, unknown>, opts: { device: string; configdrive?: string; signal?: AbortSignal }): Promise<unknown>;
}

/** What a plugin step gets: a small, typed view of the agent, not its internals. */
export interface PluginContext {
  readonly kind: 'deploy' | 'clean' | 'service';
  readonly step: string;
  /** The node as Ironic sent it with this call (secrets masked). */
  readonly node: Record<string, unknown> | undefined;
  readonly ports: readonly unknown[];
  /** JSON log lines tagged with the plugin and the step. */
  readonly log: PluginLogger;
  readonly config: AgentConfig;
  /** Aborted when the step times out; pass it on to long operations. */
  readonly signal: AbortSignal;
  /** Runs a tool with an argument array (no shell); stdout, or an Error with the tool's stderr. Killed on timeout. */
  run(file: string, args: readonly string[], opts?: { input?: string | Buffer; timeoutSeconds?: number; env?: Record<string, string> }): Promise<string>;
  /** The machine's disks (only allowlisted ones when --allow-device is set). */
  disks(): Promise<BlockDevice[]>;
  /** The disk Ironic's root device hints choose (spec §9.9), or a DeviceNotFound error. */
  rootDevice(): Promise<BlockDevice>;
  /** The node's raw root device hints (instance_info.root_device, else properties.root_device). */
  readonly rootDeviceHints: unknown;
  /**
   * The disk guard: call it before writing, wiping or partitioning any device. Resolves to
   * the real device path, or throws when the device is mounted, swap, held, or not allowed.
   */
  checkDevice(device: string): Promise<string>;
  /** Shown in the RUNNING command's result while Ironic polls (spec §8.7). */
  setProgress(progress: unknown): void;
  /** The agent's image writer (see ImageWriter). */
  readonly imageWriter: ImageWriter;
}
