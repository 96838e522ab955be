import type { ArgSpec, ArgType, StepDefinition } from './types.ts';

function typeOf(value: unknown): ArgType | 'null' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as ArgType;
}

function matches(spec: ArgSpec, value: unknown): boolean {
  if (spec.type === undefined) return true;
  const actual = typeOf(value);
  return actual === spec.type || (spec.type === 'number' && actual === 'integer');
}

/**
 * What is wrong with `args` for a step, judged by its argsinfo (spec §8.1), before the step
 * runs: missing required arguments, arguments of the wrong declared type and, for strict
 * steps (every operator plugin), arguments it does not declare. Empty when all is well.
 * Ironic checks user steps the same way (required and unknown arguments) before it calls
 * the agent, but JSON-RPC callers and templates reach the agent directly.
 */
export function argsProblems(definition: Pick<StepDefinition, 'argsinfo' | 'strictArgs'>, args: Record<string, unknown>): string[] {
  const argsinfo = definition.argsinfo ?? {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(argsinfo)) {
    const present = Object.hasOwn(args, name) && args[name] !== undefined;
    if (!present) {
      if (spec.required) problems.push(`missing required argument "${name}" (${spec.description})`);
      continue;
    }
    if (!matches(spec, args[name])) {
      problems.push(`argument "${name}" must be ${article(spec.type!)} ${spec.type}, got ${typeOf(args[name])}`);
    }
  }
  if (definition.strictArgs) {
    const known = Object.keys(argsinfo);
    for (const name of Object.keys(args)) {
      if (!Object.hasOwn(argsinfo, name)) {
        problems.push(`unknown argument "${name}" (${known.length > 0 ? `accepted: ${known.join(', ')}` : 'the step takes no arguments'})`);
      }
    }
  }
  return problems;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}
