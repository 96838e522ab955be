import { z } from 'zod';
import { invalidCommandParams } from '../errors.ts';

/**
 * `image_info` as Ironic's `direct` interface builds it (spec §9.1). The shape is checked
 * loosely here, because IPA accepts any extra keys (partition images carry many); the rules
 * that decide whether the image can be verified are IPA's validator (spec §9.2), with its
 * messages, in `validateImageInfo`.
 */
export const ImageInfoSchema = z.looseObject({
  id: z.unknown(),
  urls: z.unknown(),
  checksum: z.unknown().optional(),
  os_hash_algo: z.unknown().optional(),
  os_hash_value: z.unknown().optional(),
  disk_format: z.string().nullish(),
  container_format: z.string().nullish(),
  stream_raw_images: z.boolean().nullish(),
  image_type: z.string().nullish(),
  node_uuid: z.string().nullish(),
  deploy_boot_mode: z.string().nullish(),
  image_request_authorization: z.string().nullish(),
  image_server_auth_strategy: z.string().nullish(),
  image_server_user: z.string().nullish(),
  image_server_password: z.string().nullish(),
  proxies: z.record(z.string(), z.string().nullish()).nullish(),
  no_proxy: z.string().nullish(),
  configdrive: z.string().nullish(),
});
export type RawImageInfo = z.output<typeof ImageInfoSchema>;

/** The validated, typed view the writers work on. */
export interface ImageInfo {
  id: string;
  urls: string[];
  checksum: string | undefined;
  osHashAlgo: string | undefined;
  osHashValue: string | undefined;
  /** Ironic's `disk_format`: `raw` means write as is, anything else is inspected (spec §9.5). */
  diskFormat: string | undefined;
  streamRawImages: boolean;
  imageType: string | undefined;
  nodeUuid: string | undefined;
  deployBootMode: string | undefined;
  /** Decoded `image_request_authorization`, sent verbatim as the Authorization header. */
  authorization: string | undefined;
  basicAuth: { user: string | undefined; password: string | undefined } | undefined;
  proxies: { http?: string; https?: string };
  noProxy: string | undefined;
  configdrive: string | undefined;
  /** Everything Ironic sent, for the partition-image fields (root_mb, swap_mb, ...). */
  raw: RawImageInfo;
}

const isUrl = (s: string) => s.startsWith('http://') || s.startsWith('https://');
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v !== '';

/**
 * IPA's `_validate_image_info` (spec §9.2, vectors §12.6): raises InvalidCommandParamsError
 * (HTTP 400, nothing recorded) with IPA's exact messages.
 */
export function validateImageInfo(info: RawImageInfo | undefined, opts: { md5Enabled: boolean }): ImageInfo {
  const raw = info ?? ({} as RawImageInfo);
  for (const field of ['id', 'urls'] as const) {
    if (!(field in raw) || raw[field] === undefined) throw invalidCommandParams(`Image is missing '${field}' field.`);
  }
  const urls = raw.urls;
  if (!Array.isArray(urls) || urls.length === 0) {
    throw invalidCommandParams("Image 'urls' must be a list with at least one element.");
  }
  // IPA would fail later in the download; a clear 400 now is kinder to the operator. No
  // file:// URLs: a caller must not make the agent copy the ramdisk's own files to a disk.
  for (const url of urls) {
    if (typeof url !== 'string' || !URL.canParse(url) || !isUrl(url)) {
      throw invalidCommandParams(`Image 'urls' must contain only http(s) URLs, got ${JSON.stringify(url)}.`);
    }
  }

  let checksumAvailable = false;
  const checksum = raw.checksum;
  if (checksum !== undefined && checksum !== null) {
    if (!nonEmptyString(checksum)) throw invalidCommandParams("Image 'checksum' must be a non-empty string.");
    // Longer than MD5 (or a URL) is sha256/sha512 territory; MD5 only when enabled.
    if (isUrl(checksum) || checksum.length > 32 || opts.md5Enabled) checksumAvailable = true;
  }
  const algo = raw.os_hash_algo;
  const value = raw.os_hash_value;
  if (algo || value) {
    if (!nonEmptyString(algo)) throw invalidCommandParams("Image 'os_hash_algo' must be a non-empty string.");
    if (!nonEmptyString(value)) throw invalidCommandParams("Image 'os_hash_value' must be a non-empty string.");
    checksumAvailable = true;
  }
  if (!checksumAvailable) {
    throw invalidCommandParams(
      "Image checksum is not available, either the 'checksum' field or the 'os_hash_algo' and 'os_hash_value' fields pair must be set for image verification.",
    );
  }

  let authorization: string | undefined;
  if (raw.image_request_authorization) {
    authorization = Buffer.from(raw.image_request_authorization, 'base64').toString('utf8');
  }
  const basicAuth = raw.image_server_auth_strategy === 'http_basic'
    ? { user: raw.image_server_user ?? undefined, password: raw.image_server_password ?? undefined }
    : undefined;
  const proxies: { http?: string; https?: string } = {};
  if (raw.proxies?.http) proxies.http = raw.proxies.http;
  if (raw.proxies?.https) proxies.https = raw.proxies.https;

  return {
    id: String(raw.id),
    urls: urls as string[],
    checksum: nonEmptyString(checksum) ? checksum : undefined,
    osHashAlgo: nonEmptyString(algo) ? algo : undefined,
    osHashValue: nonEmptyString(value) ? value : undefined,
    diskFormat: raw.disk_format ?? undefined,
    streamRawImages: raw.stream_raw_images ?? false,
    imageType: raw.image_type ?? undefined,
    nodeUuid: raw.node_uuid ?? undefined,
    deployBootMode: raw.deploy_boot_mode ?? undefined,
    authorization,
    basicAuth,
    proxies,
    noProxy: raw.no_proxy ?? undefined,
    configdrive: raw.configdrive ?? undefined,
    raw,
  };
}

export function isPartitionImage(info: ImageInfo): boolean {
  return info.imageType === 'partition';
}
