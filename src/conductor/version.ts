/** Ironic API microversions and the features that need them (spec §2). */
export type Microversion = readonly [major: number, minor: number];

/** Used when discovery fails, and the floor IPA assumes. */
export const FALLBACK_VERSION: Microversion = [1, 31];
/** heartbeat carries agent_version. */
export const AGENT_VERSION_FIELD: Microversion = [1, 36];
/** lookup issues and heartbeat carries the agent token; lookup is asked at this version. */
export const AGENT_TOKEN: Microversion = [1, 62];
/** heartbeat carries agent_verify_ca (auto-TLS); heartbeat is sent at this version. */
export const AGENT_VERIFY_CA: Microversion = [1, 68];

export function atLeast(v: Microversion, min: Microversion): boolean {
  return v[0] > min[0] || (v[0] === min[0] && v[1] >= min[1]);
}

export function lower(a: Microversion, b: Microversion): Microversion {
  return atLeast(a, b) ? b : a;
}

export function formatVersion(v: Microversion): string {
  return `${v[0]}.${v[1]}`;
}

export function parseVersion(text: unknown): Microversion | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^(\d+)\.(\d+)$/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}
