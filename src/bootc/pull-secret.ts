import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { invalidCommandParams } from '../errors.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function strictBase64(text: string): Buffer | undefined {
  const t = text.trim();
  if (t === '' || t.length % 4 !== 0 || !BASE64.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

/**
 * Ironic's `oci_pull_secret` is base64 of the registry `auth` value, itself base64 of
 * `user:password` (spec/bootc.md §4.3: the conductor encodes once more). Returns the `auth`
 * value. Errors never quote the secret.
 */
export function decodePullSecret(secret: string): string {
  const outer = strictBase64(secret);
  if (!outer) throw invalidCommandParams('oci_pull_secret is not valid base64');
  const auth = outer.toString('utf8').trim();
  const inner = strictBase64(auth);
  if (!inner || !inner.toString('utf8').includes(':')) {
    throw invalidCommandParams('oci_pull_secret does not decode to a registry auth value (base64 of user:password)');
  }
  return auth;
}

/** Creates `dir` (and parents) if needed and makes it private to root. */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/**
 * Runs `fn` with the path of a docker-style auth file holding `auth` for `registry`: mode
 * 0600 in a fresh 0700 directory under `workDir`, removed with its directory whatever `fn`
 * does, so it is gone before any tenant code runs (CVE-2026-54422, spec §7.7 step 6).
 */
export async function withAuthFile<T>(workDir: string, registry: string, auth: string, fn: (path: string) => Promise<T>): Promise<T> {
  await privateDir(workDir);
  const dir = await mkdtemp(join(workDir, 'pull-'));
  try {
    const path = join(dir, 'auth.json');
    await writeFile(path, JSON.stringify({ auths: { [registry]: { auth } } }), { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
