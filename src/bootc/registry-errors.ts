import { ToolError } from '../run.ts';
import { imageDownloadError, imageDownloadFatalError } from '../writers/errors.ts';

/** What went wrong talking to the registry, from podman's or skopeo's words (spec/bootc.md §3). */
export type PullFailure = 'auth' | 'missing' | 'tls' | 'network' | 'other';

export function classifyPullError(stderr: string): PullFailure {
  if (/unauthorized|authentication required|denied|invalid username\/password/i.test(stderr)) return 'auth';
  if (/manifest unknown|name unknown|not found: manifest|repository name not known|image not known/i.test(stderr)) return 'missing';
  if (/x509|certificate|server gave HTTP response to HTTPS client/i.test(stderr)) return 'tls';
  if (/connection refused|connection reset|EOF|i\/o timeout|no such host|network is unreachable|TLS handshake timeout|timeout|503|502|504|too many requests/i.test(stderr)) return 'network';
  return 'other';
}

/** The last lines a tool wrote, for an error message. */
export function tail(text: string, lines = 5): string {
  return text.trim().split('\n').filter((l) => l.trim() !== '').slice(-lines).join(' | ');
}

/** A distinct, operator-readable error per failure; only network trouble is worth retrying. */
export function pullError(image: string, err: unknown): Error {
  const stderr = err instanceof ToolError ? err.stderr || err.message : String(err);
  const said = tail(stderr, 3);
  switch (classifyPullError(stderr)) {
    case 'auth':
      return imageDownloadFatalError(image, `the registry refused the credentials (check the node's pull secret): ${said}`);
    case 'missing':
      return imageDownloadFatalError(image, `the image does not exist in the registry: ${said}`);
    case 'tls':
      return imageDownloadFatalError(image, `TLS to the registry failed (trust its CA in /etc/containers/certs.d or mark it insecure in registries.conf): ${said}`);
    case 'network':
      return imageDownloadError(image, `the registry could not be reached: ${said}`);
    default:
      return imageDownloadError(image, `podman could not pull it: ${said}`);
  }
}
