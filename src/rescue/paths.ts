import { join } from 'node:path';
import type { AgentConfig } from '../config.ts';

/** IPA's fixed locations (spec §7.5); the ramdisk's own tooling reads the password file. */
const IPA_PASSWORD_FILE = '/etc/ipa-rescue-config/ipa-rescue-password';
const IPA_MARKER_FILE = '/etc/.rescued';

export interface RescuePaths {
  passwordFile: string;
  markerFile: string;
  shadowFile: string | undefined;
  user: string;
}

/**
 * Where rescue state lives. A simulated ramdisk (--simulate-power: tests, the demo) keeps it
 * under its state directory unless told otherwise, so it never writes this machine's /etc.
 */
export function rescuePaths(config: AgentConfig): RescuePaths {
  const simulated = (name: string) => join(config.stateDir, 'rescue', name);
  return {
    passwordFile: config.rescuePasswordFile ?? (config.simulatePower ? simulated('ipa-rescue-password') : IPA_PASSWORD_FILE),
    markerFile: config.rescueMarkerFile ?? (config.simulatePower ? simulated('rescued') : IPA_MARKER_FILE),
    shadowFile: config.rescueShadowFile,
    user: config.rescueUser,
  };
}
