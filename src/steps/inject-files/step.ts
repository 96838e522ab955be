import { lstat, realpath } from 'node:fs/promises';
import { deploymentError, invalidCommandParams } from '../../errors.ts';
import { selectRootDevice } from '../../hardware/root-device.ts';
import type { AgentContext } from '../../agent-context.ts';
import type { StepCall, StepContext, StepDefinition } from '../types.ts';
import { fetchContent } from './fetch.ts';
import { collectFiles, decodeBase64, formatUrl, isUrl, pathParts, type InjectFile } from './files.ts';
import { listPartitions, mountable, Mounts, probeFilesystem, type Partition } from './partitions.ts';
import { placeFile } from './write.ts';

const priority = (ctx: AgentContext) => ctx.config.injectFilesPriority;

/** IPA's inject_files deploy and service step (spec §8.4, §8.4.1), priority ipa-inject-files-priority. */
export const injectFilesSteps: StepDefinition[] = [
  {
    step: 'inject_files',
    interface: 'deploy',
    kinds: { deploy: { priority }, service: { priority } },
    argsinfo: {
      files: {
        description:
          "Files to inject, a list of file structures with keys: 'path' (path to the file), 'partition' (partition specifier), " +
          "'content' (base64 encoded string or URL), 'deleted', 'mode', 'dirmode', 'owner' and 'group'. " +
          'Merged with the values from node.properties[inject_files].',
        required: false,
      },
      verify_ca: { description: 'Whether to verify TLS certificates (or a CA bundle path). Global agent options are used by default.', required: false },
    },
    run: injectFiles,
  },
];

interface Injected {
  path: string;
  partition: string;
  action: 'written' | 'deleted' | 'absent';
}

async function injectFiles(call: StepCall, ctx: StepContext): Promise<{ injected: Injected[] }> {
  const node = call.node ?? ctx.conductor.node;
  const files = collectFiles(node, call.args.files);
  if (files.length === 0) {
    ctx.log.info('inject_files: nothing to inject');
    return { injected: [] };
  }
  const verifyCa = verifyCaOf(call.args.verify_ca, ctx);
  // Every content is fetched and decoded before any disk is touched.
  const contents = new Map<InjectFile, Buffer>();
  for (const file of files) {
    if (file.deleted || file.content === undefined || file.content === null) continue;
    contents.set(
      file,
      isUrl(file.content)
        ? await fetchContent(formatUrl(file.content, node, call.ports), { verifyCa, timeoutSeconds: ctx.config.imageDownloadConnectionTimeout, signal: ctx.signal })
        : decodeBase64(file.content, file.source),
    );
  }

  const disk = await selectRootDevice(ctx);
  const device = await ctx.diskGuard.check(disk.name);
  const partitions = await listPartitions(device);
  if (partitions.length === 0) throw deploymentError(`inject_files: the root device ${device} has no partitions`);
  const mounts = new Mounts(ctx.run);
  const fstypes = new Map<string, string | undefined>();
  const fstypeOf = async (p: Partition) => {
    if (!fstypes.has(p.path)) fstypes.set(p.path, await probeFilesystem(ctx.run, p.path));
    return fstypes.get(p.path);
  };
  const injected: Injected[] = [];
  try {
    for (const file of files) {
      ctx.signal.throwIfAborted();
      const partition = await choosePartition(file, device, partitions, fstypeOf, mounts);
      const fstype = await fstypeOf(partition);
      if (!mountable(fstype)) throw deploymentError(`inject_files: partition ${partition.path} has no filesystem to write ${file.path} into (${fstype ?? 'none found'})`);
      const root = await mounts.mount(partition.path, fstype!);
      const action = await placeFile(root, file, contents.get(file), `partition ${partition.number} (${partition.path})`);
      ctx.log.info({ path: file.path, partition: partition.path, action, mode: file.mode, owner: file.owner, group: file.group }, `inject_files: ${file.path} ${action}`);
      injected.push({ path: file.path, partition: partition.path, action });
    }
  } finally {
    await mounts.unmountAll();
  }
  return { injected };
}

function verifyCaOf(value: unknown, ctx: AgentContext): boolean | string {
  if (value === undefined || value === null) return ctx.config.insecure ? false : (ctx.config.cafile ?? true);
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && value.startsWith('/')) return value;
  throw invalidCommandParams(`inject_files: verify_ca must be true, false or the path of a CA bundle, got ${JSON.stringify(value)}`);
}

/**
 * The partition a file goes to (spec §8.4.1): the one named by number or device path, which
 * must be a partition of the root device; otherwise the first partition holding the file's
 * top-level directory. A file directly in / needs an explicit partition.
 */
async function choosePartition(
  file: InjectFile,
  device: string,
  partitions: Partition[],
  fstypeOf: (p: Partition) => Promise<string | undefined>,
  mounts: Mounts,
): Promise<Partition> {
  const spec = file.partition;
  if (typeof spec === 'number') {
    const found = partitions.find((p) => p.number === spec);
    if (!found) throw deploymentError(`inject_files: ${file.source}: partition ${spec} does not exist on the root device ${device} (it has ${partitions.map((p) => p.number).join(', ')})`);
    return found;
  }
  if (typeof spec === 'string') {
    const resolved = await realpath(spec).catch(() => spec);
    for (const p of partitions) if ((await realpath(p.path).catch(() => p.path)) === resolved) return p;
    throw deploymentError(`inject_files: ${file.source}: ${spec} is not a partition of the root device ${device}`);
  }
  const parts = pathParts(file.path);
  if (parts.length < 2) throw deploymentError(`inject_files: ${file.source}: ${file.path} is directly in /, so it needs an explicit "partition"`);
  for (const p of partitions) {
    const fstype = await fstypeOf(p);
    if (!mountable(fstype)) continue;
    const root = await mounts.mount(p.path, fstype!);
    if (await isRealDirectory(`${root}/${parts[0]}`)) return p;
  }
  throw deploymentError(`inject_files: ${file.source}: no partition of ${device} has a /${parts[0]} directory for ${file.path}; give "partition"`);
}

/** lstat: a symlinked top-level directory does not count (it may point anywhere). */
async function isRealDirectory(path: string): Promise<boolean> {
  return lstat(path).then((s) => s.isDirectory(), () => false);
}
