import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary plugin directory holding the given modules (file name -> source). */
export async function pluginDir(files: Record<string, string>): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ina-plugins-'));
  for (const [name, source] of Object.entries(files)) await writeFile(join(dir, name), source);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A plugin module with one step; `step` is spliced in as source text. */
export function pluginSource(step: string, provider = `name: 'p', version: '1.0'`): string {
  return `export default { ${provider}, steps: [${step}] };\n`;
}
