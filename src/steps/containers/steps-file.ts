import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { hardwareManagerConfigurationError as configurationError } from '../../errors.ts';
import { STEP_INTERFACES } from '../plugins/validate.ts';
import type { StepInterface } from '../types.ts';

export { configurationError };
const options = z.union([z.array(z.string()), z.string()]).optional();
const FileStep = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be letters, digits and underscores'),
  image: z.string().min(1),
  priority: z.number().int().min(0),
  interface: z.enum(STEP_INTERFACES as [StepInterface, ...StepInterface[]]),
  reboot_requested: z.boolean(),
  abortable: z.boolean(),
  pull_options: options,
  run_options: options,
});
const StepsFile = z.object({ steps: z.array(z.unknown()).nullish() }).nullish();
export type FileStep = z.output<typeof FileStep>;

/**
 * The container steps baked into the ramdisk (spec §8.4: IPA's container_steps_file):
 * `steps: [{name, image, priority, interface, reboot_requested, abortable, pull_options?, run_options?}]`.
 * A missing file means no steps; a broken one is a configuration error naming the step and
 * the key, which get_*_steps reports (IPA raises HardwareManagerConfigurationError there too).
 */
export async function readStepsFile(path: string): Promise<FileStep[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw configurationError(`container steps file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  try {
    // Loaded here, not at start-up: most ramdisks have no steps file.
    const { parse } = await import('yaml');
    doc = parse(text);
  } catch (err) {
    throw configurationError(`container steps file ${path}: not valid YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const top = StepsFile.safeParse(doc);
  if (!top.success) throw configurationError(`container steps file ${path}: expected a mapping with a "steps" list`);
  const problems: string[] = [];
  const steps: FileStep[] = [];
  const seen = new Set<string>();
  (top.data?.steps ?? []).forEach((raw, i) => {
    const label = typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string' ? `step ${(raw as { name: string }).name}` : `steps[${i}]`;
    const parsed = FileStep.safeParse(raw);
    if (!parsed.success) {
      problems.push(...parsed.error.issues.map((issue) => `${label}: ${issue.path.length > 0 ? `"${issue.path.join('.')}" ` : ''}${issue.message}`));
      return;
    }
    if (seen.has(parsed.data.name)) problems.push(`${label}: duplicate step name`);
    seen.add(parsed.data.name);
    steps.push(parsed.data);
  });
  if (problems.length > 0) throw configurationError(`container steps file ${path}: ${problems.join('; ')}`);
  return steps;
}
