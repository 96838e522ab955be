import { z } from 'zod';
import { ToolError, type RunCommand } from '../run.ts';

/**
 * What `blkid -p -o export` says about one device: the signatures libblkid finds by reading
 * the device itself (-p: no cache, no udev). Keys as blkid prints them: TYPE, UUID, PTTYPE,
 * PTUUID, PART_ENTRY_TYPE, PART_ENTRY_UUID, USAGE...
 */
export type BlkidProbe = Record<string, string>;

/** `KEY=value` lines; blkid escapes spaces and specials in values with a backslash. */
export function parseBlkidExport(text: string): BlkidProbe {
  const probe: BlkidProbe = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    if (!/^[A-Z_0-9]+$/.test(key)) continue;
    probe[key] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  return probe;
}

/**
 * Low-level probe of `device`. blkid exits 2 when it finds nothing, which is an answer
 * (an empty probe), not a failure; 8 means ambivalent (several signatures that exclude
 * each other, e.g. a filesystem over an old partition table), reported as AMBIVALENT=1.
 */
export async function probeDevice(run: RunCommand, device: string): Promise<BlkidProbe> {
  try {
    return parseBlkidExport(await run('blkid', ['-p', '-o', 'export', device]));
  } catch (err) {
    if (err instanceof ToolError && err.exitCode === 2) return {};
    if (err instanceof ToolError && err.exitCode === 8) return { DEVNAME: device, AMBIVALENT: '1' };
    throw err;
  }
}

/** One signature as `wipefs --json` (no --all: read only) lists it. */
export interface Signature {
  device: string;
  offset: number;
  type: string;
}

const WipefsOutput = z.object({
  signatures: z.array(z.looseObject({ device: z.string(), offset: z.string(), type: z.string() })),
});

/** `wipefs --json` output; empty output (no signature found) is no signature. */
export function parseWipefsJson(text: string): Signature[] {
  if (text.trim() === '') return [];
  let parsed: z.output<typeof WipefsOutput>;
  try {
    parsed = WipefsOutput.parse(JSON.parse(text));
  } catch (err) {
    throw new Error(`unexpected wipefs output: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parsed.signatures.map((s) => ({ device: s.device, offset: Number.parseInt(s.offset, 16), type: s.type }));
}

/** Every signature wipefs can find on `device`, without changing anything. */
export async function listSignatures(run: RunCommand, device: string): Promise<Signature[]> {
  return parseWipefsJson(await run('wipefs', ['--json', device]));
}
