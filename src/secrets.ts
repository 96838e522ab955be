/**
 * Keys whose values are secrets wherever they appear: agent tokens, passwords, pull secrets,
 * auth headers, and config drives (they carry user data and keys). Never logged, never shown
 * to a caller without the agent token.
 */
const SECRET_KEY = /token|password|passwd|secret|configdrive|authorization|private_key|^auth$/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** A deep copy of `value` with the values of secret keys replaced by "***". */
export function maskSecrets(value: unknown, opts: { maxString?: number } = {}, depth = 0): unknown {
  if (depth > 16) return '[too deep]';
  if (typeof value === 'string') {
    const max = opts.maxString;
    return max !== undefined && value.length > max ? `${value.slice(0, max)}...[${value.length} chars]` : value;
  }
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, opts, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretKey(k) && v !== null && v !== undefined && v !== '' ? '***' : maskSecrets(v, opts, depth + 1);
    }
    return out;
  }
  return value;
}
