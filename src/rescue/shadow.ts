import { readFile } from 'node:fs/promises';
import { replaceFile } from './atomic-file.ts';

const DAY_MS = 86_400_000;

/**
 * Sets `user`'s password hash in a shadow(5) file, and its last-change day so that no
 * "password expired, change it now" prompt meets the operator. Every other line stays byte
 * for byte. A user missing from the file is an error: a password nobody can use is no rescue.
 */
export async function setShadowPassword(file: string, user: string, hash: string, now: Date = new Date()): Promise<void> {
  if (/[:\n]/.test(hash)) throw new Error('a password hash cannot contain ":" or a newline');
  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  const index = lines.findIndex((l) => l.split(':')[0] === user);
  if (index < 0) throw new Error(`user ${user} not found in ${file}`);
  const fields = lines[index]!.split(':');
  while (fields.length < 9) fields.push('');
  fields[1] = hash;
  fields[2] = String(Math.floor(now.getTime() / DAY_MS));
  lines[index] = fields.join(':');
  await replaceFile(file, lines.join('\n'), 0o600);
}
