import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from './errors.ts';
import { ExecError, exec } from './exec.ts';

/** One downloaded Debian package, as recorded in the manifest. */
export interface DebPackage {
  name: string;
  version: string;
  file: string;
  sha256: string;
}

interface Stanza {
  name: string;
  version: string;
  depends: string[][];
}

/**
 * Dependencies worth following: shared libraries. Everything else a package depends on
 * (maintainer scripts' perl, debconf, init systems) never runs in the ramdisk, and the
 * files actually copied are checked for missing libraries afterwards (elf.ts).
 */
const LIBRARY_PACKAGE = /^(lib|zlib1g$)/;

/** `a (>= 1) | b, c:any` -> [['a', 'b'], ['c']] */
export function parseDepends(field: string): string[][] {
  return field
    .split(',')
    .map((group) => group.split('|').map((alt) => alt.trim().replace(/\s*\(.*\)$/, '').replace(/:\w+$/, '')))
    .filter((group) => group.length > 0 && group[0] !== '');
}

/** Stanzas of `apt-cache show` output (Package, Version, Depends + Pre-Depends). */
export function parseStanzas(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: (.*(?:\\n .*)*)`, 'm').exec(block)?.[1]?.replace(/\n /g, ' ');
    const name = field('Package');
    const version = field('Version');
    if (!name || !version) continue;
    const depends = [field('Pre-Depends'), field('Depends')].filter((f): f is string => f !== undefined).flatMap(parseDepends);
    stanzas.push({ name, version, depends });
  }
  return stanzas;
}

/**
 * The packages to download: the roots plus the closure of their library dependencies, by
 * the candidate versions of the machine's apt lists. A root that apt does not know fails
 * the build with its name.
 */
export async function resolvePackages(roots: readonly string[]): Promise<Map<string, string>> {
  const chosen = new Map<string, string>();
  let wanted = [...new Set(roots)];
  let isRoot = true;
  while (wanted.length > 0) {
    const found = await showCandidates(wanted);
    if (isRoot) {
      const missing = wanted.filter((n) => !found.has(n));
      if (missing.length > 0) {
        throw new BuildError(
          `Debian package${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')} ` +
            '(is this Debian 12 with `apt-get update` done, and is the name right?)',
        );
      }
    }
    const next = new Set<string>();
    for (const name of wanted) {
      const stanza = found.get(name);
      if (!stanza) continue;
      chosen.set(name, stanza.version);
      for (const group of stanza.depends) {
        // First alternative that is a real package; virtual-only groups are left to the ELF check.
        const alternatives = group.filter((alt) => LIBRARY_PACKAGE.test(alt));
        const pick = alternatives[0];
        if (pick && !chosen.has(pick) && !wanted.includes(pick)) next.add(pick);
      }
    }
    wanted = [...next];
    isRoot = false;
  }
  return new Map([...chosen].sort(([a], [b]) => a.localeCompare(b)));
}

async function showCandidates(names: string[]): Promise<Map<string, Stanza>> {
  const found = new Map<string, Stanza>();
  // One name at a time only when the batch fails: apt-cache show stops at a virtual package.
  const batches = [names];
  while (batches.length > 0) {
    const batch = batches.pop()!;
    let out: string;
    try {
      out = await exec('apt-cache', ['show', '--no-all-versions', ...batch]);
    } catch (err) {
      if (!(err instanceof ExecError)) throw err;
      if (batch.length > 1) batches.push(...batch.map((n) => [n]));
      continue;
    }
    for (const stanza of parseStanzas(out)) if (!found.has(stanza.name)) found.set(stanza.name, stanza);
  }
  return found;
}

/** Downloads each package into `cacheDir` unless its exact version is already there. */
export async function downloadPackages(wanted: Map<string, string>, cacheDir: string): Promise<DebPackage[]> {
  await mkdir(cacheDir, { recursive: true });
  const debFile = (name: string, version: string) => `${name}_${version.replace(/:/g, '%3a')}_`;
  const present = new Set(await readdir(cacheDir));
  const missing = [...wanted].filter(([name, version]) => ![...present].some((f) => f.startsWith(debFile(name, version))));
  if (missing.length > 0) {
    const args = ['download', ...missing.map(([n, v]) => `${n}=${v}`)];
    // As root, apt drops privileges to _apt, which cannot write a root-owned cache directory.
    if (process.getuid?.() === 0) args.unshift('-o', 'APT::Sandbox::User=root');
    try {
      await exec('apt-get', args, { cwd: cacheDir });
    } catch (err) {
      if (!(err instanceof ExecError)) throw err;
      throw new BuildError(
        `apt-get download failed for ${missing.map(([n]) => n).join(' ')}: ${(err as Error).message}\n` +
          'The build needs the Debian package mirror (run `apt-get update` first).',
      );
    }
  }
  const files = await readdir(cacheDir);
  const result: DebPackage[] = [];
  for (const [name, version] of wanted) {
    const file = files.find((f) => f.startsWith(debFile(name, version)) && f.endsWith('.deb'));
    if (!file) throw new BuildError(`package ${name}=${version} was not downloaded into ${cacheDir}`);
    result.push({ name, version, file: join(cacheDir, file), sha256: await sha256File(join(cacheDir, file)) });
  }
  return result;
}

/** Unpacks every package into one tree (no maintainer scripts run: dpkg-deb -x only). */
export async function extractPackages(packages: readonly DebPackage[], tree: string): Promise<void> {
  await mkdir(tree, { recursive: true });
  for (const p of packages) await exec('dpkg-deb', ['-x', p.file, tree]);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
