import { z } from 'zod';
import {
  absolutePath,
  absolutePathList,
  apiUrlList,
  boolText,
  bootifText,
  enumText,
  hostText,
  microversionText,
  numberText,
  optionWords,
  wordList,
  portText,
  tokenText,
} from './values.ts';

/**
 * Every option the agent reads: its kernel parameter (IPA's `ipa-*` name where IPA has
 * one, `ina-*` for ours), the flag that overrides it, the parser and the default.
 * The flag is the option name in kebab case (`lookupTimeout` -> `--lookup-timeout`).
 * README's configuration reference is checked against this table by a test.
 */
export interface OptionSpec<T> {
  /** Kernel command line name; absent for flag-only options. */
  param?: string;
  /** The flag, when it is not the kebab-case option name. */
  flag?: string;
  schema: z.ZodType<T, string>;
  default: T;
  /** The flag may be given several times (values accumulate). */
  repeatable?: boolean;
  help: string;
}

function option<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return spec;
}

const seconds = numberText({ min: 0 });
/** A comma list of names, empty entries dropped. */
const nameList = z.string().transform((text) => text.split(',').map((n) => n.trim()).filter((n) => n !== ''));
const formatList = z.string().transform((text) => text.split(',').map((f) => f.trim().toLowerCase()).filter((f) => f !== ''));
const count = numberText({ min: 0, integer: true });

export const OPTIONS = {
  apiUrls: option({
    param: 'ipa-api-url', flag: 'api-url', schema: apiUrlList, default: [] as string[],
    help: 'Ironic API URL, or a comma-separated list tried in order. Without it the agent runs standalone: no lookup, no heartbeat.',
  }),
  insecure: option({
    param: 'ipa-insecure', schema: boolText, default: false,
    help: 'Do not verify the TLS certificates of Ironic and of image servers.',
  }),
  cafile: option({
    param: 'ina-cafile', schema: absolutePath, default: undefined as string | undefined,
    help: 'CA bundle (PEM) for outgoing TLS (IPA option cafile).',
  }),
  certfile: option({
    param: 'ina-certfile', schema: absolutePath, default: undefined as string | undefined,
    help: 'Client certificate (PEM) presented to Ironic (IPA option certfile).',
  }),
  keyfile: option({
    param: 'ina-keyfile', schema: absolutePath, default: undefined as string | undefined,
    help: 'Private key of the client certificate (IPA option keyfile).',
  }),
  agentToken: option({
    param: 'ipa-agent-token', schema: tokenText, default: undefined as string | undefined,
    help: 'Pre-shared agent token (Ironic passes one with virtual media). Required on every command call when set.',
  }),
  globalRequestId: option({
    param: 'ipa-global-request-id', schema: tokenText, default: undefined as string | undefined,
    help: 'Sent as X-OpenStack-Request-ID on every call to Ironic.',
  }),
  listenHost: option({
    param: 'ipa-listen-host', schema: hostText, default: undefined as string | undefined,
    help: 'Address the agent API binds to. Default :: when IPv6 is enabled, else 0.0.0.0.',
  }),
  listenPort: option({
    param: 'ipa-listen-port', schema: portText, default: 9999,
    help: 'Port the agent API binds to.',
  }),
  advertiseHost: option({
    param: 'ipa-advertise-host', schema: hostText, default: undefined as string | undefined,
    help: 'Host or IP put into callback_url. Default: the source address of the route to Ironic.',
  }),
  advertisePort: option({
    param: 'ipa-advertise-port', schema: portText, default: 9999,
    help: 'Port put into callback_url.',
  }),
  advertiseProtocol: option({
    param: 'ipa-advertise-protocol', schema: enumText(['http', 'https']), default: 'http' as 'http' | 'https',
    help: 'Scheme of callback_url; auto-TLS switches it to https.',
  }),
  networkInterface: option({
    param: 'ipa-network-interface', schema: z.string().regex(/^[\w.:-]+$/, 'expected an interface name'), default: undefined as string | undefined,
    help: 'Advertise the IPv4 address of this interface.',
  }),
  ipLookupAttempts: option({
    param: 'ipa-ip-lookup-attempts', schema: numberText({ min: 1, integer: true }), default: 6,
    help: 'Attempts to find the advertise address from the route to Ironic.',
  }),
  ipLookupSleep: option({
    param: 'ipa-ip-lookup-timeout', schema: seconds, default: 10,
    help: 'Seconds between those attempts.',
  }),
  lookupTimeout: option({
    param: 'ipa-lookup-timeout', schema: seconds, default: 600,
    help: 'Seconds to keep retrying lookup before the agent exits with an error.',
  }),
  lookupInterval: option({
    param: 'ipa-lookup-interval', schema: seconds, default: 1,
    help: 'Initial (and minimum) seconds between lookup attempts.',
  }),
  lookupMaxInterval: option({
    param: 'ina-lookup-max-interval', schema: numberText({ min: 0.1 }), default: 60,
    help: 'Cap of the exponential lookup back-off (IPA: fixed 60).',
  }),
  heartbeatMinInterval: option({
    param: 'ina-heartbeat-min-interval', schema: numberText({ min: 0.1 }), default: 5,
    help: 'Seconds between a heartbeat and an early one forced by a finished command (IPA: fixed 5).',
  }),
  httpRequestTimeout: option({
    param: 'ipa-http-request-timeout', schema: numberText({ min: 0.1 }), default: 30,
    help: 'Timeout in seconds of each call to the Ironic API.',
  }),
  ironicApiVersion: option({
    param: 'ipa-ironic-api-version', schema: microversionText, default: undefined as readonly [number, number] | undefined,
    help: 'Use this Ironic API microversion instead of discovering it.',
  }),
  bootif: option({
    param: 'BOOTIF', schema: bootifText, default: undefined as string | undefined,
    help: 'MAC of the PXE interface as pxelinux passes it; reported as boot.pxe_interface.',
  }),
  debug: option({
    param: 'ipa-debug', schema: boolText, default: false,
    help: 'Debug logging.',
  }),
  tlsMinVersion: option({
    param: 'ipa-tls-min-version', schema: enumText(['1.2', '1.3']), default: '1.2' as '1.2' | '1.3',
    help: 'Minimum TLS version of the agent API and of calls to Ironic; Ironic may raise it in lookup.',
  }),
  tlsCipherSuites: option({
    param: 'ipa-tls-cipher-suites', schema: z.string().regex(/^[\w:+!.-]+$/, 'expected an OpenSSL cipher list'), default: undefined as string | undefined,
    help: 'TLS 1.2 cipher list (OpenSSL syntax). Default: ECDHE-ECDSA/RSA with AES-GCM.',
  }),
  tlsCertificateCurve: option({
    param: 'ipa-tls-certificate-curve', schema: enumText(['p256', 'p384', 'p521']), default: 'p384' as 'p256' | 'p384' | 'p521',
    help: 'Curve of the auto-TLS key.',
  }),
  enableAutoTls: option({
    param: 'ina-enable-auto-tls', schema: boolText, default: true,
    help: 'Serve HTTPS with a self-signed certificate sent to Ironic as agent_verify_ca (Ironic >= 1.68).',
  }),
  autoTlsAllowedClockSkew: option({
    param: 'ina-auto-tls-allowed-clock-skew', schema: seconds, default: 3600,
    help: 'Seconds the auto-TLS certificate is back-dated by.',
  }),
  listenTls: option({
    param: 'ina-listen-tls', schema: boolText, default: false,
    help: 'Serve HTTPS with --tls-cert-file/--tls-key-file (disables auto-TLS).',
  }),
  tlsCertFile: option({
    param: 'ina-tls-cert-file', schema: absolutePath, default: undefined as string | undefined,
    help: 'Certificate of the agent API when listen-tls is on.',
  }),
  tlsKeyFile: option({
    param: 'ina-tls-key-file', schema: absolutePath, default: undefined as string | undefined,
    help: 'Private key of the agent API when listen-tls is on.',
  }),
  hardwareInitializationDelay: option({
    param: 'ipa-hardware-initialization-delay', schema: seconds, default: 0,
    help: 'Seconds to sleep before doing anything (slow RAID controllers).',
  }),
  diskWaitAttempts: option({
    param: 'ipa-disk-wait-attempts', schema: count, default: 10,
    help: 'Attempts to see a suitable root disk at start-up.',
  }),
  diskWaitDelay: option({
    param: 'ipa-disk-wait-delay', schema: seconds, default: 3,
    help: 'Seconds between those attempts.',
  }),
  imageDownloadConnectionTimeout: option({
    param: 'ipa-image-download-connection-timeout', schema: numberText({ min: 0.1 }), default: 60,
    help: 'Connect and read-idle timeout of image downloads, seconds.',
  }),
  imageDownloadConnectionRetries: option({
    param: 'ipa-image-download-connection-retries', schema: count, default: 9,
    help: 'Retries of a failed image download.',
  }),
  imageDownloadConnectionRetryInterval: option({
    param: 'ipa-image-download-connection-retry-interval', schema: seconds, default: 10,
    help: 'Seconds between image download retries.',
  }),
  imageDownloadMaxDuration: option({
    param: 'ipa-image-download-max-duration', schema: seconds, default: 0,
    help: 'Abort an image download running longer than this many seconds in total (0: no limit).',
  }),
  allowDevice: option({
    param: 'ina-allow-device', schema: absolutePathList, default: [] as string[], repeatable: true,
    help: 'Only these block devices may be written, wiped or erased (comma list on the kernel command line; the flag repeats).',
  }),
  stateDir: option({
    param: 'ina-state-dir', schema: absolutePath, default: '/run/ironic-node-agent',
    help: 'Where the agent keeps its TLS certificate and key.',
  }),
  simulatePower: option({
    schema: boolText, default: false,
    help: 'Log power actions (power_off, reboot, lockdown) instead of doing them, then behave as a freshly booted ramdisk. For tests and the demo; flag only.',
  }),

  // Issue 6: the steps engine, operator plugins, inject_files and container steps.
  pluginDir: option({
    param: 'ina-plugin-dir', schema: absolutePathList, default: ['/usr/lib/ironic-node-agent/plugins'] as string[], repeatable: true,
    help: 'Directories of operator plugins (ES modules .js/.mjs/.ts offering steps). The default may be absent; a directory given explicitly must exist.',
  }),
  pluginStepTimeout: option({
    param: 'ina-plugin-step-timeout', schema: numberText({ min: 1 }), default: 3600,
    help: 'Seconds a plugin step may run before it fails, unless the step sets its own timeout.',
  }),
  injectFilesPriority: option({
    param: 'ipa-inject-files-priority', schema: count, default: 0,
    help: 'Priority of the inject_files deploy and service step (0: only when requested).',
  }),
  containerRunner: option({
    param: 'ina-container-runner', schema: enumText(['podman', 'docker']), default: 'podman' as 'podman' | 'docker',
    help: 'Container runner of the container steps (IPA [container]runner); Ironic may override it in lookup.',
  }),
  allowArbitraryContainers: option({
    param: 'ina-allow-arbitrary-containers', schema: boolText, default: false,
    help: 'Let step arguments name any container image (IPA [container]allow_arbitrary_containers).',
  }),
  allowedContainers: option({
    param: 'ina-allowed-containers', schema: wordList, default: [] as string[], repeatable: true,
    help: 'Container images step arguments may name (IPA [container]allowed_containers; comma list on the kernel command line).',
  }),
  containerStepsFile: option({
    param: 'ina-container-steps-file', schema: absolutePath, default: '/etc/ironic-node-agent/container-steps.yaml',
    help: 'YAML file of container steps baked into the ramdisk (IPA [container]container_steps_file); absent: none.',
  }),
  containerPullOptions: option({
    param: 'ina-container-pull-options', schema: optionWords, default: [] as string[],
    help: 'Options of "<runner> pull", space-separated (IPA [container]pull_options).',
  }),
  containerRunOptions: option({
    param: 'ina-container-run-options', schema: optionWords, default: ['--rm', '--network=host'] as string[],
    help: 'Options of "<runner> run", space-separated (IPA [container]run_options).',
  }),

  // Issue 5: inventory, inspection, cleaning.
  inspectionCallbackUrl: option({
    param: 'ipa-inspection-callback-url', schema: apiUrlList, default: [] as string[],
    help: 'Where to POST the inspection data at start-up (comma list tried in order). Without it, inspection runs only when ipa-inspection-collectors and ipa-api-url are both set (then to <api-url>/v1/continue_inspection).',
  }),
  inspectionCollectors: option({
    param: 'ipa-inspection-collectors', schema: nameList, default: [] as string[],
    help: 'Inspection collectors, in order: default, logs, pci-devices, numa-topology, dmi-decode (empty: default,logs).',
  }),
  inspectionDhcpWaitTimeout: option({
    param: 'ipa-inspection-dhcp-wait-timeout', schema: seconds, default: 60,
    help: 'Seconds inspection waits for the PXE interface (or all, see below) to have an IPv4 address.',
  }),
  inspectionDhcpAllInterfaces: option({
    param: 'ipa-inspection-dhcp-all-interfaces', schema: boolText, default: false,
    help: 'Wait for every interface to have an IPv4 address before inspection, not only the PXE one.',
  }),
  collectLldp: option({
    param: 'ipa-collect-lldp', schema: boolText, default: false,
    help: 'Listen for LLDP frames on every NIC and report their TLVs in the inventory (interfaces[].lldp); needs tcpdump.',
  }),
  lldpTimeout: option({
    param: 'ipa-lldp-timeout', schema: numberText({ min: 0.1 }), default: 30,
    help: 'Seconds to listen for LLDP frames.',
  }),
  guardSpecialFilesystems: option({
    param: 'ipa-guard-special-filesystems', schema: boolText, default: true,
    help: 'Refuse to erase devices carrying shared-disk cluster filesystems (GPFS, VMFS, GFS2); a node can opt out with driver_internal_info.wipe_special_filesystems=false.',
  }),

  // Issue 4: the image data path (IPA's config-file options; Ironic's lookup answer overrides the first four).
  md5Enabled: option({
    param: 'ina-md5-enabled', schema: boolText, default: true,
    help: 'Accept MD5 image checksums (IPA option md5_enabled; Ironic sends agent_md5_checksum_enable).',
  }),
  permittedImageFormats: option({
    param: 'ina-permitted-image-formats', schema: formatList, default: ['raw', 'gpt', 'qcow2'] as string[],
    help: 'Image formats deep inspection accepts, comma-separated (IPA option permitted_image_formats; Ironic sends its own list).',
  }),
  disableDeepImageInspection: option({
    param: 'ina-disable-deep-image-inspection', schema: boolText, default: false,
    help: 'Skip the format allow-list and format-match checks (qcow2 backing and data files are refused regardless).',
  }),
  enableBiosBootloaderInstall: option({
    param: 'ina-enable-bios-bootloader-install', schema: boolText, default: false,
    help: 'Allow installing a legacy BIOS boot loader for partition images (IPA option; off since CVE-2026-43003).',
  }),
  ignoreBootloaderFailure: option({
    param: 'ipa-ignore-bootloader-failure', schema: boolText, default: false,
    help: 'Report success from install_bootloader even when the boot loader could not be set up.',
  }),
  configDriveRebuild: option({
    param: 'ina-config-drive-rebuild', schema: boolText, default: false,
    help: 'Always write the config drive as a vfat CONFIG-2 filesystem instead of copying the ISO (IPA option config_drive_rebuild).',
  }),

  // Issue 9: partition images.
  efiSystemPartitionSize: option({
    param: 'ina-efi-system-partition-size', schema: numberText({ min: 1, integer: true }), default: 550,
    help: 'Size in MiB of the EFI system partition made for a partition image in UEFI mode (IPA option efi_system_partition_size).',
  }),

  // Issue 7: bootc deploys.
  disableBootcDeploy: option({
    param: 'ipa-disable-bootc-deploy', schema: boolText, default: false,
    help: 'Refuse execute_bootc_install (IPA option disable_bootc_deploy).',
  }),
  bootcWorkDir: option({
    param: 'ina-bootc-work-dir', schema: absolutePath, default: '/run/ironic-node-agent/bootc',
    help: 'Private directory (0700) for the pull auth file and the authorized keys given to bootc; never under /tmp (bootc hides it).',
  }),
  bootcPullRetries: option({
    param: 'ina-bootc-pull-retries', schema: count, default: 3,
    help: 'Retries of a bootc image pull that failed for a network reason (not for auth or a missing image).',
  }),
  bootcPullRetryDelay: option({
    param: 'ina-bootc-pull-retry-delay', schema: seconds, default: 5,
    help: 'Seconds between bootc pull retries.',
  }),
  bootcExpansionFactor: option({
    param: 'ina-bootc-expansion-factor', schema: numberText({ min: 1 }), default: 3,
    help: 'Space a bootc image needs in container storage, as a multiple of its compressed size (layers are stored unpacked).',
  }),

  // Issue 9: rescue (rescue.finalize_rescue).
  rescuePasswordFile: option({
    param: 'ina-rescue-password-file', schema: absolutePath, default: undefined as string | undefined,
    help: 'Where finalize_rescue writes the rescue password hash (IPA: /etc/ipa-rescue-config/ipa-rescue-password, the default; under --state-dir with --simulate-power).',
  }),
  rescueMarkerFile: option({
    param: 'ina-rescue-marker-file', schema: absolutePath, default: undefined as string | undefined,
    help: 'The file finalize_rescue creates; an agent that finds it at start serves no API (IPA: /etc/.rescued, the default; under --state-dir with --simulate-power).',
  }),
  rescueShadowFile: option({
    param: 'ina-rescue-shadow-file', schema: absolutePath, default: undefined as string | undefined,
    help: 'A shadow file whose rescue user gets the password hash at finalize_rescue (the ramdisk passes /etc/shadow); unset: only the password file is written, for the ramdisk\'s own tooling.',
  }),
  rescueUser: option({
    param: 'ina-rescue-user', schema: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'expected a user name'), default: 'rescue',
    help: 'The user of --rescue-shadow-file that gets the rescue password.',
  }),
} as const;

export type OptionName = keyof typeof OPTIONS;
export type OptionValues = { [K in OptionName]: (typeof OPTIONS)[K]['default'] };

export function flagName(name: string): string {
  const spec = (OPTIONS as Record<string, OptionSpec<unknown>>)[name];
  return spec?.flag ?? name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
