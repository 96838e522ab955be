import { z } from 'zod';
import { AgentError, invalidCommandParams } from '../../errors.ts';

/** One entry of inject_files (spec §8.4.1): from node.properties.inject_files or the step's `files` argument. */
const FileEntry = z.strictObject({
  path: z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path').refine((p) => !p.includes('\0'), 'must not contain NUL'),
  partition: z.union([z.number().int().min(1), z.string().regex(/^\d+$/).transform(Number), z.string().regex(/^\/dev\//, 'must be a partition number or a /dev path')]).nullish(),
  content: z.string().nullish(),
  deleted: z.boolean().nullish(),
  mode: z.number().int().min(0).max(0o7777).nullish(),
  dirmode: z.number().int().min(0).max(0o7777).nullish(),
  owner: z.number().int().min(0).nullish(),
  group: z.number().int().min(0).nullish(),
});
export type InjectFile = z.output<typeof FileEntry> & { source: string };

function asList(value: unknown, where: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidCommandParams(`${where} must be a list of files, got ${JSON.stringify(value)}`);
  return value;
}

/** node.properties.inject_files followed by the `files` argument, each validated; all problems at once. */
export function collectFiles(node: Record<string, unknown> | undefined, filesArg: unknown): InjectFile[] {
  const properties = node?.properties;
  const fromNode = asList(typeof properties === 'object' && properties !== null ? (properties as Record<string, unknown>).inject_files : undefined, 'node properties.inject_files');
  const items = [
    ...fromNode.map((item, i) => ({ item, source: `properties.inject_files[${i}]` })),
    ...asList(filesArg, 'argument "files"').map((item, i) => ({ item, source: `files[${i}]` })),
  ];
  const files: InjectFile[] = [];
  const problems: string[] = [];
  for (const { item, source } of items) {
    const parsed = FileEntry.safeParse(item);
    if (!parsed.success) {
      problems.push(...parsed.error.issues.map((i) => `${source}${i.path.length > 0 ? `.${i.path.join('.')}` : ''}: ${i.message}`));
      continue;
    }
    const segments = parsed.data.path.split('/');
    if (segments.includes('..')) problems.push(`${source}.path: "${parsed.data.path}" contains "..": refusing a path that could escape the partition`);
    else if (!parsed.data.deleted && (parsed.data.content === undefined || parsed.data.content === null)) problems.push(`${source}: needs "content" (base64 or a URL) unless "deleted" is true`);
    else files.push({ ...parsed.data, source });
  }
  if (problems.length > 0) throw invalidCommandParams(`inject_files: ${problems.join('; ')}`);
  return files;
}

/** The path split into its parts, without empty ones: "/etc//x/" -> ["etc", "x"]. */
export function pathParts(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

export function isUrl(content: string): boolean {
  return /^https?:\/\//i.test(content);
}

export function decodeBase64(content: string, source: string): Buffer {
  if (!BASE64.test(content)) throw new AgentError('InvalidCommandParamsError', 400, 'Invalid command parameters', `inject_files: ${source}.content is neither base64 nor an http(s) URL`);
  return Buffer.from(content, 'base64');
}

/**
 * Python str.format fields IPA allows in a content URL: `{node[uuid]}`, `{ports[0][address]}`,
 * `{node[properties][x]}`. A field naming something absent is an error, not an empty string.
 */
export function formatUrl(url: string, node: unknown, ports: unknown): string {
  return url.replace(/\{(node|ports)((?:\[[^\][{}]*\])*)\}/g, (field, root: string, keys: string) => {
    let value: unknown = root === 'node' ? node : ports;
    for (const [, key] of keys.matchAll(/\[([^\]]*)\]/g)) {
      if (Array.isArray(value) && /^\d+$/.test(key!)) value = value[Number(key)];
      else if (typeof value === 'object' && value !== null && Object.hasOwn(value, key!)) value = (value as Record<string, unknown>)[key!];
      else value = undefined;
      if (value === undefined) break;
    }
    if (value === undefined || value === null || typeof value === 'object') {
      throw invalidCommandParams(`inject_files: URL ${url} names ${field}, which the ${root === 'node' ? 'node' : 'port list'} does not have as a value`);
    }
    return encodeURIComponent(String(value));
  });
}
