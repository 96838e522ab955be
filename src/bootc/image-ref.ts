import { invalidCommandParams } from '../errors.ts';

/** An `oci://` image source as podman names it (spec §7.7 step 5). */
export interface ImageRef {
  /** `host[:port]/path[:tag|@digest]`, the scheme dropped. */
  ref: string;
  /** `host[:port]`: the key of the pull secret in the auth file (IPA uses the URL's netloc). */
  registry: string;
}

const HOST = /^(\[[0-9a-f:]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?$/i;
/** The distribution spec's repository path component. */
const COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Parses Ironic's `image_source`. Only `oci://` is a bootc image; the reference must name its
 * registry (a short name would let registries.conf search lists pick a registry the pull
 * secret was not meant for), and tags, digests and ports are checked as the distribution
 * spec writes them, so a bad reference fails here rather than as an opaque podman error.
 */
export function parseImageSource(source: string): ImageRef {
  const bad = (why: string) => invalidCommandParams(`image_source ${JSON.stringify(source)} is not a valid bootc image: ${why}`);
  if (!source.startsWith('oci://')) throw bad('expected an oci:// URL (oci://registry[:port]/repository[:tag|@sha256:digest])');
  const ref = source.slice('oci://'.length);
  const slash = ref.indexOf('/');
  if (slash <= 0) throw bad('no registry host before the repository');
  const registry = ref.slice(0, slash);
  if (!HOST.test(registry)) throw bad(`registry ${JSON.stringify(registry)} is not a host[:port]`);
  const port = registry.match(/:([0-9]+)$/)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw bad(`port ${port} is out of range`);
  let rest = ref.slice(slash + 1);
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digest = rest.slice(at + 1);
    if (!DIGEST.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is not sha256:<64 hex> or sha512:<128 hex>`);
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    const tag = rest.slice(colon + 1);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is not valid`);
    rest = rest.slice(0, colon);
  }
  if (rest === '' || !rest.split('/').every((c) => COMPONENT.test(c))) throw bad(`repository ${JSON.stringify(rest)} is not valid (lower case, digits and . _ - separators)`);
  return { ref, registry };
}
