import { parseBoolWord } from '../config/values.ts';
import type { BlockDevice } from './block-devices.ts';

/**
 * Root device hints as IPA (ironic-lib's device_hints) parses and matches them
 * (spec §9.9, vectors §12.1-§12.2): oslo specs_matcher expressions over normalised values.
 */
const HINT_TYPES = {
  size: 'int',
  model: 'str',
  wwn: 'str',
  serial: 'str',
  vendor: 'str',
  wwn_with_extension: 'str',
  wwn_vendor_extension: 'str',
  name: 'str',
  rotational: 'bool',
  hctl: 'str',
  by_path: 'str',
  tran: 'str',
} as const;

export type HintName = keyof typeof HINT_TYPES;
/** Parsed hints: string expressions with their operator, and `rotational` as a boolean. */
export type RootDeviceHints = Partial<Record<Exclude<HintName, 'rotational'>, string>> & { rotational?: boolean };

/** A device as matched: `serial` and `wwn` may be lists (lsblk's and udev's values). */
export type HintTarget = Partial<Omit<BlockDevice, 'serial' | 'wwn'>> & {
  name: string;
  serial?: string | string[] | null;
  wwn?: string | string[] | null;
};

export class InvalidHintsError extends Error {
  override name = 'InvalidHintsError';
}

// Longest first, so that `s==` is not read as `=` and `<=` not as `<`.
const OPERATORS = ['<range-in>', '<all-in>', '<in>', '<or>', 's==', 's!=', 's<=', 's>=', 's<', 's>', '==', '!=', '<=', '>=', '<', '>', '='] as const;
type Operator = (typeof OPERATORS)[number] | '';

/** Python's urllib.parse.quote(v, safe='/'): what ironic-lib applies to every value. */
function quote(value: string): string {
  return Array.from(new TextEncoder().encode(value), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9_.\-~/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

export function extractOperator(expression: unknown, hint: string): { op: Operator; values: string[] } {
  const text = String(expression).trim().toLowerCase();
  if (text === '') throw new InvalidHintsError(`Root device hint "${hint}" expression is empty`);
  const op = OPERATORS.find((o) => text.startsWith(o));
  if (!op) return { op: '', values: [text] };
  const values = text.split(op).filter((v) => v !== '').map((v) => v.trim());
  return { op, values };
}

/** Lower-case, split off the operator, URL-quote each value, re-join (spec §9.9). */
export function normalizeExpression(expression: unknown, hint: string): string {
  const { op, values } = extractOperator(expression, hint);
  return `${op}${values.map((v) => ` ${quote(v)} `).join(op)}`.trim();
}

/**
 * Validates and normalises hints. `undefined` for no hints; InvalidHintsError for an unknown
 * hint, a wrong type, a non-positive or non-integer size, or an empty expression.
 */
export function parseRootDeviceHints(raw: unknown): RootDeviceHints | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidHintsError(`Root device hints must be a dictionary, got ${JSON.stringify(raw)}`);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  const unknown = entries.map(([k]) => k).filter((k) => !(k in HINT_TYPES));
  if (unknown.length > 0) {
    throw new InvalidHintsError(`No device can be found because the following hints "${unknown.sort().join(', ')}" are not supported by this version of ironic-node-agent. Supported hints are: "${Object.keys(HINT_TYPES).join(', ')}"`);
  }
  const hints: RootDeviceHints = {};
  for (const [name, expression] of entries as [HintName, unknown][]) {
    const type = HINT_TYPES[name];
    if (type === 'bool') {
      const value = typeof expression === 'boolean' ? expression : typeof expression === 'string' ? parseBoolWord(expression) : undefined;
      if (value === undefined) throw new InvalidHintsError(`Root device hint "${name}" is not a Boolean value. Current value: ${String(expression)}`);
      hints.rotational = value;
    } else if (type === 'str') {
      if (typeof expression !== 'string') {
        throw new InvalidHintsError(`Root device hint "${name}" is not a string value. Hint expression: ${String(expression)}`);
      }
      hints[name as Exclude<HintName, 'rotational' | 'size'>] = withOperator(normalizeExpression(expression, name), 's==');
    } else {
      if (typeof expression !== 'string' && typeof expression !== 'number') {
        throw new InvalidHintsError(`Root device hint "${name}" is not an integer value. Current value: ${String(expression)}`);
      }
      for (const v of extractOperator(expression, name).values) {
        if (!/^[+-]?\d+$/.test(v)) throw new InvalidHintsError(`Root device hint "${name}" is not an integer value. Current value: ${String(expression)}`);
        if (Number(v) <= 0) throw new InvalidHintsError(`Root device hint "${name}" should be a positive integer. Current value: ${String(expression)}`);
      }
      hints.size = withOperator(String(expression), '==');
    }
  }
  return hints;
}

function withOperator(expression: string, implied: string): string {
  return extractOperator(expression, '').op === '' ? `${implied} ${expression}` : expression;
}

/** oslo specs_matcher.match over normalised values. */
function matchSpec(value: string | number, spec: string): boolean {
  const { op, values } = extractOperator(spec, '');
  const num = (v: string | number) => Number(v);
  switch (op) {
    case '':
      return String(value) === values[0];
    case '=':
    case '>=':
      return num(value) >= num(values[0]!);
    case '==':
      return num(value) === num(values[0]!);
    case '!=':
      return num(value) !== num(values[0]!);
    case '<=':
      return num(value) <= num(values[0]!);
    case '<':
      return num(value) < num(values[0]!);
    case '>':
      return num(value) > num(values[0]!);
    case 's==':
      return String(value) === values[0];
    case 's!=':
      return String(value) !== values[0];
    case 's<':
      return String(value) < values[0]!;
    case 's<=':
      return String(value) <= values[0]!;
    case 's>':
      return String(value) > values[0]!;
    case 's>=':
      return String(value) >= values[0]!;
    case '<in>':
      return String(value).includes(values[0]!);
    case '<or>':
      return values.some((v) => String(value) === v);
    case '<all-in>':
    case '<range-in>':
      // In the grammar, but they cannot match these hints (spec §9.9).
      return false;
  }
}

function matches(device: HintTarget, hints: RootDeviceHints): boolean {
  for (const [hint, spec] of Object.entries(hints) as [HintName, string | boolean][]) {
    const raw = (device as Record<string, unknown>)[hint];
    if (hint === 'rotational') {
      const value = typeof raw === 'boolean' ? raw : typeof raw === 'string' ? parseBoolWord(raw) : undefined;
      if (value === undefined || value !== spec) return false;
      continue;
    }
    if (hint === 'size') {
      if (typeof raw !== 'number' || !matchSpec(raw / 2 ** 30, spec as string)) return false;
      continue;
    }
    const candidates = Array.isArray(raw) ? raw : [raw];
    const normalised: string[] = [];
    for (const c of candidates) {
      if (c === null || c === undefined || String(c).trim() === '') continue;
      normalised.push(normalizeExpression(c, hint));
    }
    // An empty attribute skips the device (spec §12.2).
    if (normalised.length === 0 || !normalised.some((v) => matchSpec(v, spec as string))) return false;
  }
  return true;
}

/** Every device, in listing order, that satisfies all hints. */
export function findDevicesByHints<T extends HintTarget>(devices: readonly T[], hints: RootDeviceHints): T[] {
  return devices.filter((d) => matches(d, hints));
}
