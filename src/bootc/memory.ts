import { readFile, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { AgentContext } from '../agent-context.ts';
import { imageDownloadOutOfSpaceError } from '../writers/errors.ts';

const MiB = 2 ** 20;
const TMPFS = 0x01021994;
const RAMFS = 0x858458f6;

const Descriptor = z.object({ size: z.number().nonnegative(), digest: z.string() }).loose();
const ImageManifest = z.object({ layers: z.array(Descriptor), config: Descriptor.optional() });
const ImageIndex = z.object({ manifests: z.array(Descriptor.extend({ platform: z.object({ architecture: z.string(), os: z.string() }).optional() })) });
type Parsed = { kind: 'image'; m: z.infer<typeof ImageManifest> } | { kind: 'index'; m: z.infer<typeof ImageIndex> };

function parseManifest(raw: string): Parsed {
  const json: unknown = JSON.parse(raw);
  const index = ImageIndex.safeParse(json);
  if (index.success) return { kind: 'index', m: index.data };
  return { kind: 'image', m: ImageManifest.parse(json) };
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' };

/**
 * The compressed size of `image` from its manifest (`skopeo inspect --raw`), choosing this
 * machine's platform from an index. Nothing is downloaded but the manifests.
 */
export async function remoteImageSize(ctx: AgentContext & { signal: AbortSignal }, image: string, authFile: string | undefined): Promise<number> {
  const auth = authFile ? [`--authfile=${authFile}`] : [];
  const inspect = async (ref: string) => {
    const raw = await ctx.run('skopeo', ['inspect', '--raw', ...auth, `docker://${ref}`], { signal: ctx.signal });
    return parseManifest(raw);
  };
  let manifest = await inspect(image);
  if (manifest.kind === 'index') {
    const arch = ARCH[process.arch] ?? process.arch;
    const entry = manifest.m.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
    if (!entry) throw new Error(`the image index of ${image} has no linux/${arch} image`);
    const repo = image.replace(/@.*$/, '').replace(/:[^/:]+$/, '');
    manifest = await inspect(`${repo}@${entry.digest}`);
  }
  if (manifest.kind !== 'image') throw new Error(`the manifest of ${image} is an index inside an index`);
  return manifest.m.layers.reduce((sum, l) => sum + l.size, manifest.m.config?.size ?? 0);
}

export interface StorageSpace {
  graphRoot: string;
  /** Bytes podman can still write there. */
  available: number;
  /** The storage lives in RAM (tmpfs/ramfs, as in a ramdisk). */
  inRam: boolean;
  memAvailable: number;
}

async function memAvailable(): Promise<number> {
  const text = await readFile('/proc/meminfo', 'utf8');
  const kb = Number(text.match(/^MemAvailable:\s+(\d+)/m)?.[1] ?? 0);
  return kb * 1024;
}

/** Where podman keeps images and how much room is left there (RAM too, when it is a tmpfs). */
export async function storageSpace(ctx: AgentContext): Promise<StorageSpace> {
  const graphRoot = (await ctx.run('podman', ['info', '--format', '{{.Store.GraphRoot}}'])).trim();
  let dir = graphRoot;
  for (;;) {
    try {
      const st = await statfs(dir);
      const mem = await memAvailable();
      const inRam = st.type === TMPFS || st.type === RAMFS;
      const free = st.bavail * st.bsize;
      // ramfs reports no limit; tmpfs pages come out of RAM either way.
      const available = inRam ? (st.type === RAMFS ? mem : Math.min(free, mem)) : free;
      return { graphRoot, available, inRam, memAvailable: mem };
    } catch (err) {
      const parent = dirname(dir);
      if (parent === dir) throw err;
      dir = parent;
    }
  }
}

/**
 * Memory admission (Ironic's docs: everything is pulled and unpacked into RAM, a 600 MB image
 * may need around 10 GB): fail before pulling, saying what is needed and what there is.
 */
export function admit(image: string, compressed: number, factor: number, space: StorageSpace): void {
  const need = compressed * factor;
  if (need <= space.available) return;
  const mib = (n: number) => `${Math.ceil(n / MiB)} MiB`;
  const where = space.inRam
    ? `${space.graphRoot} is in RAM and ${mib(space.available)} is free (MemAvailable ${mib(space.memAvailable)})`
    : `${space.graphRoot} has ${mib(space.available)} free`;
  throw imageDownloadOutOfSpaceError(
    image,
    `not enough room to pull it: it needs about ${mib(need)} (${mib(compressed)} compressed x ${factor}) in container storage, but ${where}. ` +
      'Give the machine more RAM, or point podman\'s storage (graphroot in /etc/containers/storage.conf) at a disk that is not the deploy target.',
  );
}
