import { ARG_TYPES, STEP_KINDS, SupportLevel, type StepInterface } from '../types.ts';
import type { PluginProvider } from './api.ts';

export const STEP_INTERFACES: readonly StepInterface[] = ['deploy', 'raid', 'bios', 'management', 'firmware'];
const STEP_KEYS = new Set(['step', 'interface', 'deploy', 'clean', 'service', 'reboot_requested', 'argsinfo', 'timeout', 'run']);
const OFFER_KEYS = new Set(['priority', 'abortable']);
const ARG_KEYS = new Set(['description', 'required', 'type']);
const PROVIDER_KEYS = new Set(['name', 'version', 'supportLevel', 'steps']);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PROVIDER_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** Ironic's in-band band for custom-agent deploy steps: after deploy (100), before prepare_instance_boot (60) (spec §8.6). */
export const DEPLOY_PRIORITY_MIN = 61;
export const DEPLOY_PRIORITY_MAX = 99;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (typeof v === 'function') return 'a function';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * Every rule a plugin breaks, as messages naming the step and the rule (the caller prefixes
 * the plugin). Empty means the provider is usable as it is. Rules: spec §8.1 step data,
 * §8.6 deploy priorities 0 or 61-99, unique step names, known interfaces, IPA's argsinfo
 * shape; unknown keys are refused because a misspelt `priorty` would otherwise be silently
 * ignored.
 */
export function providerProblems(value: unknown): string[] {
  if (!isRecord(value)) return [`the provider must be an object { name, version, steps }, got ${show(value)}`];
  const problems: string[] = [];
  for (const key of Object.keys(value)) {
    if (!PROVIDER_KEYS.has(key)) problems.push(`unknown provider key "${key}" (known: ${[...PROVIDER_KEYS].join(', ')})`);
  }
  if (typeof value.name !== 'string' || !PROVIDER_NAME.test(value.name)) {
    problems.push(`provider "name" must be a word of letters, digits, "_", "." or "-", got ${show(value.name)}`);
  }
  if (typeof value.version !== 'string' || value.version === '') problems.push(`provider "version" must be a non-empty string, got ${show(value.version)}`);
  if (value.supportLevel !== undefined && (!Number.isInteger(value.supportLevel) || (value.supportLevel as number) < SupportLevel.GENERIC)) {
    problems.push(`"supportLevel" must be an integer >= 1 (IPA: GENERIC 1, MAINLINE 2, SERVICE_PROVIDER 3), got ${show(value.supportLevel)}`);
  }
  if (!Array.isArray(value.steps) || value.steps.length === 0) {
    problems.push(`"steps" must be a non-empty array of steps, got ${show(value.steps)}`);
    return problems;
  }
  const seen = new Set<string>();
  value.steps.forEach((raw, index) => {
    const label = isRecord(raw) && typeof raw.step === 'string' ? `step ${raw.step}` : `steps[${index}]`;
    for (const p of stepProblems(raw)) problems.push(`${label}: ${p}`);
    if (isRecord(raw) && typeof raw.step === 'string') {
      if (seen.has(raw.step)) problems.push(`${label}: duplicate step name "${raw.step}" (each step name may appear once per plugin)`);
      seen.add(raw.step);
    }
  });
  return problems;
}

function stepProblems(raw: unknown): string[] {
  if (!isRecord(raw)) return [`a step must be an object, got ${show(raw)}`];
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!STEP_KEYS.has(key)) problems.push(`unknown key "${key}" (known: ${[...STEP_KEYS].join(', ')})`);
  }
  if (typeof raw.step !== 'string' || !IDENTIFIER.test(raw.step)) {
    problems.push(`"step" must be a name of letters, digits and underscores, got ${show(raw.step)}`);
  }
  if (!STEP_INTERFACES.includes(raw.interface as StepInterface)) {
    problems.push(`unknown interface ${show(raw.interface)} (known: ${STEP_INTERFACES.join(', ')})`);
  }
  const offered = STEP_KINDS.filter((k) => raw[k] !== undefined);
  if (offered.length === 0) problems.push('offers the step for no kind: give at least one of deploy, clean, service with a priority');
  for (const kind of offered) problems.push(...offerProblems(kind, raw[kind]));
  if (raw.reboot_requested !== undefined && typeof raw.reboot_requested !== 'boolean') {
    problems.push(`"reboot_requested" must be true or false, got ${show(raw.reboot_requested)}`);
  }
  if (raw.timeout !== undefined && (typeof raw.timeout !== 'number' || !Number.isFinite(raw.timeout) || raw.timeout <= 0)) {
    problems.push(`"timeout" must be a positive number of seconds, got ${show(raw.timeout)}`);
  }
  if (raw.argsinfo !== undefined) problems.push(...argsinfoProblems(raw.argsinfo));
  if (typeof raw.run !== 'function') problems.push(`"run" must be a function (args, ctx) => result, got ${show(raw.run)}`);
  return problems;
}

function offerProblems(kind: (typeof STEP_KINDS)[number], offer: unknown): string[] {
  if (!isRecord(offer)) return [`"${kind}" must be an object { priority }, got ${show(offer)}`];
  const problems: string[] = [];
  for (const key of Object.keys(offer)) {
    if (!OFFER_KEYS.has(key)) problems.push(`unknown key "${kind}.${key}" (known: priority, abortable)`);
  }
  const priority = offer.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority)) {
    problems.push(`${kind} priority must be an integer, got ${show(priority)}`);
  } else if (priority < 0) {
    problems.push(`${kind} priority must not be negative, got ${priority}`);
  } else if (kind === 'deploy' && priority !== 0 && (priority < DEPLOY_PRIORITY_MIN || priority > DEPLOY_PRIORITY_MAX)) {
    problems.push(
      `deploy priority ${priority} is outside the in-band band: use ${DEPLOY_PRIORITY_MIN}-${DEPLOY_PRIORITY_MAX} ` +
        `(between Ironic's deploy at 100 and prepare_instance_boot at 60; 81-99 before an image would be written, 61-79 after) ` +
        'or 0 (run only when requested)',
    );
  }
  if (offer.abortable !== undefined) {
    if (kind === 'deploy') problems.push('"deploy.abortable" means nothing: Ironic aborts only clean and service steps');
    else if (typeof offer.abortable !== 'boolean') problems.push(`"${kind}.abortable" must be true or false, got ${show(offer.abortable)}`);
  }
  return problems;
}

function argsinfoProblems(argsinfo: unknown): string[] {
  if (!isRecord(argsinfo)) return [`"argsinfo" must be an object { argName: { description, required?, type? } }, got ${show(argsinfo)}`];
  const problems: string[] = [];
  for (const [name, info] of Object.entries(argsinfo)) {
    if (!IDENTIFIER.test(name)) problems.push(`argsinfo: argument name "${name}" must be letters, digits and underscores`);
    if (!isRecord(info)) {
      problems.push(`argsinfo.${name} must be an object { description, required?, type? }, got ${show(info)}`);
      continue;
    }
    for (const key of Object.keys(info)) {
      if (!ARG_KEYS.has(key)) problems.push(`argsinfo.${name}: unknown key "${key}" (known: description, required, type)`);
    }
    if (typeof info.description !== 'string' || info.description.trim() === '') {
      problems.push(`argsinfo.${name}.description must be a non-empty string (Ironic shows it to users)`);
    }
    if (info.required !== undefined && typeof info.required !== 'boolean') problems.push(`argsinfo.${name}.required must be true or false, got ${show(info.required)}`);
    if (info.type !== undefined && !(ARG_TYPES as readonly unknown[]).includes(info.type)) {
      problems.push(`argsinfo.${name}.type must be one of ${ARG_TYPES.join(', ')}, got ${show(info.type)}`);
    }
  }
  return problems;
}

/** Narrowing after providerProblems() returned nothing. */
export function asProvider(value: unknown): PluginProvider {
  return value as PluginProvider;
}

