import type { NodeDict } from '../steps/types.ts';

/** Config overrides Ironic sends in the lookup response (spec §3.2). */
export interface LookupSettings {
  heartbeatTimeout: number;
  md5Enabled?: boolean;
  disableDeepImageInspection?: boolean;
  permittedImageFormats?: string[];
  agentSkipBmcDetect?: boolean;
  enableBiosBootloaderInstall?: boolean;
  tlsMinVersion?: '1.2' | '1.3';
  tlsCipherSuites?: string;
  agentContainers?: Record<string, unknown>;
}

/**
 * What the agent learned from the conductor: the agent token, the cached node and the
 * lookup settings. A freshly booted ramdisk knows none of it except a pre-shared token from
 * the kernel command line, which survives reboots (spec §3.5).
 */
export class ConductorState {
  token: string | undefined;
  node: NodeDict | undefined;
  settings: LookupSettings | undefined;
  private readonly presharedToken: string | undefined;

  constructor(presharedToken?: string) {
    this.presharedToken = presharedToken;
    this.token = presharedToken;
  }

  get nodeUuid(): string | undefined {
    return typeof this.node?.uuid === 'string' ? this.node.uuid : undefined;
  }

  /** Every get_*_steps / execute_*_step call re-caches the node (spec §6.7). */
  cacheNode(node: NodeDict | undefined): void {
    if (node && typeof node === 'object') this.node = node;
  }

  forget(): void {
    this.token = this.presharedToken;
    this.node = undefined;
    this.settings = undefined;
  }
}
