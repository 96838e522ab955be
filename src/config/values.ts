import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Parsers for option values as they arrive from the kernel command line or a flag: always
 * text. Each is a zod schema from string to the typed value, with a message an operator can
 * act on when the value is wrong.
 */

const TRUE_WORDS = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE_WORDS = new Set(['0', 'f', 'false', 'off', 'n', 'no']);

/** oslo's strict bool_from_string, which IPA uses for its boolean options. */
export function parseBoolWord(text: string): boolean | undefined {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}

export const boolText = z.string().transform((text, ctx) => {
  const value = parseBoolWord(text);
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a boolean (true/false, 1/0, yes/no, on/off), got "${text}"` });
    return z.NEVER;
  }
  return value;
});

export function numberText(opts: { min?: number; max?: number; integer?: boolean } = {}) {
  const { min = 0, max = Number.MAX_SAFE_INTEGER, integer = false } = opts;
  const what = integer ? 'an integer' : 'a number';
  return z.string().transform((text, ctx) => {
    const value = text.trim() === '' ? Number.NaN : Number(text);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
      ctx.addIssue({ code: 'custom', message: `expected ${what} ${range}, got "${text}"` });
      return z.NEVER;
    }
    return value;
  });
}

export const portText = numberText({ min: 1, max: 65535, integer: true });

export function enumText<const T extends readonly [string, ...string[]]>(values: T) {
  return z.string().transform((text, ctx) => {
    const value = text.trim().toLowerCase();
    if (!(values as readonly string[]).includes(value)) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${values.join(', ')}, got "${text}"` });
      return z.NEVER;
    }
    return value as T[number];
  });
}

/** Printable ASCII without spaces: safe to put into an HTTP header or a URL. */
export const tokenText = z.string().regex(/^[\x21-\x7e]+$/, 'expected printable characters without spaces');

export const hostText = z.string().refine(
  (text) => isIP(text.replace(/^\[|\]$/g, '')) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text),
  'expected an IP address or a host name',
);

/** `ipa-api-url`: one URL or a comma-separated list, empty entries dropped (spec §1.3). */
export const apiUrlList = z.string().transform((text, ctx) => {
  const urls = text.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const url of urls) {
    if (url === 'mdns') {
      ctx.addIssue({ code: 'custom', message: 'mDNS discovery (ipa-api-url=mdns) is not supported; give the Ironic API URL(s) as http(s)://...' });
      return z.NEVER;
    }
    if (!/^https?:\/\/.+/.test(url) || !URL.canParse(url)) {
      ctx.addIssue({ code: 'custom', message: `"${url}" is not an http(s) URL` });
      return z.NEVER;
    }
  }
  return urls.map((u) => u.replace(/\/+$/, ''));
});

/** `x.y` microversion, e.g. `1.68`. */
export const microversionText = z.string().transform((text, ctx) => {
  const match = /^(\d+)\.(\d+)$/.exec(text.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a microversion like 1.68, got "${text}"` });
    return z.NEVER;
  }
  return [Number(match[1]), Number(match[2])] as const;
});

export const absolutePath = z.string().regex(/^\//, 'expected an absolute path');

/** A comma list of absolute paths (kernel parameters cannot repeat usefully). */
export const absolutePathList = z.string().transform((text, ctx) => {
  const paths = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  for (const path of paths) {
    if (!path.startsWith('/')) {
      ctx.addIssue({ code: 'custom', message: `"${path}" is not an absolute path` });
      return z.NEVER;
    }
  }
  return paths;
});

/** BOOTIF as pxelinux passes it (`01-aa-bb-cc-dd-ee-ff`) or a plain MAC. */
export const bootifText = z.string().regex(
  /^(01-)?([0-9A-Fa-f]{2}[-:]){5}[0-9A-Fa-f]{2}$/,
  'expected a MAC address, optionally in pxelinux form 01-aa-bb-cc-dd-ee-ff',
);

/** A comma list of words (container image references); empty entries dropped. */
export const wordList = z.string().transform((text) => text.split(',').map((w) => w.trim()).filter((w) => w !== ''));

/** Command-line options for a tool, space-separated as IPA's ramdisk builder writes them. */
export const optionWords = z.string().transform((text) => text.split(/\s+/).filter((w) => w !== ''));
