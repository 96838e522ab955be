import { z } from 'zod';
import type { Logger } from '../log.ts';
import type { NodeDict } from '../steps/types.ts';
import type { LookupSettings } from './state.ts';

/** The lookup response (spec §3.2): `node.uuid` plus `config`, or the legacy top-level heartbeat_timeout. */
const LookupBody = z.object({
  node: z.looseObject({ uuid: z.string().min(1) }),
  config: z.looseObject({ heartbeat_timeout: z.number().positive() }).optional(),
  heartbeat_timeout: z.number().positive().optional(),
});

export interface ParsedLookup {
  node: NodeDict;
  settings: LookupSettings;
  /** `config.agent_token` as sent: a token, "******", or absent. */
  token: string | undefined;
}

/** Returns undefined when the body is not a usable lookup answer (IPA retries then, spec §3.3). */
export function parseLookupBody(body: unknown, log: Logger): ParsedLookup | undefined {
  const parsed = LookupBody.safeParse(body);
  if (!parsed.success) return undefined;
  const { node, heartbeat_timeout: legacyTimeout } = parsed.data;
  const config = parsed.data.config ?? (legacyTimeout !== undefined ? { heartbeat_timeout: legacyTimeout } : undefined);
  if (!config) return undefined;

  const settings: LookupSettings = { heartbeatTimeout: config.heartbeat_timeout };
  // Each override is applied only when it has the right type; anything else is ignored
  // with a warning, as IPA does (spec §3.2).
  const pick = <T>(key: string, schema: z.ZodType<T>, apply: (value: T) => void) => {
    const value = (config as Record<string, unknown>)[key];
    if (value === undefined || value === null) return;
    const result = schema.safeParse(value);
    if (result.success) apply(result.data);
    else log.warn({ key }, 'ignoring a lookup config value of the wrong type');
  };
  pick('agent_md5_checksum_enable', z.boolean(), (v) => (settings.md5Enabled = v));
  pick('disable_deep_image_inspection', z.boolean(), (v) => (settings.disableDeepImageInspection = v));
  pick('permitted_image_formats', z.array(z.string()), (v) => (settings.permittedImageFormats = v));
  pick('agent_skip_bmc_detect', z.boolean(), (v) => (settings.agentSkipBmcDetect = v));
  pick('enable_bios_bootloader_install', z.boolean(), (v) => (settings.enableBiosBootloaderInstall = v || undefined));
  pick('tls_min_version', z.enum(['1.2', '1.3']), (v) => (settings.tlsMinVersion = v));
  pick('tls_cipher_suites', z.string().min(1), (v) => (settings.tlsCipherSuites = v));
  pick('agent_containers', z.record(z.string(), z.unknown()), (v) => (settings.agentContainers = v));

  const rawToken = (config as Record<string, unknown>).agent_token;
  return { node: node as NodeDict, settings, token: typeof rawToken === 'string' ? rawToken : undefined };
}
