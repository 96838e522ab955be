import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config.ts';
import { AgentError } from '../../src/errors.ts';
import { rescueExtension } from '../../src/extensions/rescue.ts';
import { finalizeRescue } from '../../src/rescue/finalize.ts';
import { forgetRescue, isRescued } from '../../src/rescue/marker.ts';
import { rescuePaths, type RescuePaths } from '../../src/rescue/paths.ts';
import { randomSetting, shaCrypt, verifyShaCrypt } from '../../src/rescue/sha-crypt.ts';
import { setShadowPassword } from '../../src/rescue/shadow.ts';
import { memoryLogger } from '../helpers/logger.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'ina-rescue-unit-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const HELLO = 'Hello world!';

describe('SHA-crypt', () => {
  // Vectors of Drepper's specification ("Unix crypt using SHA-256 and SHA-512").
  test.each([
    ['$5$saltstring', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'],
    ['$5$rounds=10000$saltstringsaltstring', '$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA'],
    ['$6$saltstring', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
    ['$6$rounds=10000$saltstringsaltstring', '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ])('%s', (setting, expected) => {
    expect(shaCrypt(HELLO, setting)).toBe(expected);
    expect(verifyShaCrypt(HELLO, expected)).toBe(true);
    expect(verifyShaCrypt('Hello world', expected)).toBe(false);
  });

  test.each([
    ['-5', '$5$'],
    ['-6', '$6$'],
  ])('agrees with openssl passwd %s on long, empty and non-ASCII passwords', (flag, id) => {
    for (const password of ['x', 'a'.repeat(33), 'a'.repeat(200), 'pässwörd €', 'with:colon and\\backslash']) {
      const setting = randomSetting(id === '$5$' ? '5' : '6');
      const salt = setting.slice(3);
      const theirs = execFileSync('openssl', ['passwd', flag, '-salt', salt, '-stdin'], { input: `${password}\n` }).toString().trim();
      expect(shaCrypt(password, setting), JSON.stringify(password)).toBe(theirs);
    }
  });

  test('rounds below the minimum count as the minimum, as glibc does', () => {
    expect(shaCrypt(HELLO, '$5$rounds=10$roundstoolow')).toBe(shaCrypt(HELLO, '$5$rounds=1000$roundstoolow'));
    expect(shaCrypt(HELLO, '$5$rounds=10$roundstoolow')).toMatch(/^\$5\$rounds=1000\$roundstoolow\$/);
  });

  test('the empty password agrees with glibc crypt(3) (openssl refuses it)', () => {
    // python3's crypt module calls glibc's crypt(3).
    const glibc = execFileSync('python3', ['-W', 'ignore', '-c', 'import crypt; print(crypt.crypt("", "$5$abc"))']).toString().trim();
    expect(shaCrypt('', '$5$abc')).toBe(glibc);
  });

  test('random settings use the crypt alphabet and differ', () => {
    const a = randomSetting('5');
    expect(a).toMatch(/^\$5\$[./0-9A-Za-z]{16}$/);
    expect(randomSetting('5')).not.toBe(a);
    expect(() => shaCrypt('x', '$1$md5salt')).toThrow('not a SHA-crypt setting');
  });
});

describe('the shadow entry', () => {
  const SHADOW = 'root:*:19000:0:99999:7:::\nrescue:!:19000:0:99999:7:::\nansible:*:19000:0:99999:7:::\n';

  test('only the rescue user\'s hash and last-change day change; the mode stays', async () => {
    const file = join(tempDir(), 'shadow');
    writeFileSync(file, SHADOW, { mode: 0o640 });
    await setShadowPassword(file, 'rescue', '$5$abc$def', new Date('2026-12-06T12:00:00Z'));
    expect(readFileSync(file, 'utf8')).toBe('root:*:19000:0:99999:7:::\nrescue:$5$abc$def:20793:0:99999:7:::\nansible:*:19000:0:99999:7:::\n');
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  test('a missing user, a hash with a field separator: errors, file untouched', async () => {
    const file = join(tempDir(), 'shadow');
    writeFileSync(file, SHADOW);
    await expect(setShadowPassword(file, 'nobody', '$5$a$b')).rejects.toThrow(`user nobody not found in ${file}`);
    await expect(setShadowPassword(file, 'rescue', '$5$a$b:0:0')).rejects.toThrow('cannot contain ":"');
    expect(readFileSync(file, 'utf8')).toBe(SHADOW);
  });
});

describe('finalize_rescue', () => {
  const paths = (shadow?: string): RescuePaths => {
    const d = tempDir();
    return { passwordFile: join(d, 'ipa-rescue-config', 'ipa-rescue-password'), markerFile: join(d, '.rescued'), shadowFile: shadow, user: 'rescue' };
  };

  test('a plain password is hashed with SHA-256 crypt; file 0600, then the marker', async () => {
    const p = paths();
    await finalizeRescue({ value: 'tr0ub4dor', hashed: false }, p, memoryLogger().log);
    const hash = readFileSync(p.passwordFile, 'utf8');
    expect(hash).toMatch(/^\$5\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}$/);
    expect(verifyShaCrypt('tr0ub4dor', hash)).toBe(true);
    expect(statSync(p.passwordFile).mode & 0o777).toBe(0o600);
    expect(await isRescued(p)).toBe(true);
    await forgetRescue(p);
    expect(await isRescued(p)).toBe(false);
    expect(existsSync(p.passwordFile)).toBe(false);
  });

  test('a hash from Ironic is written as sent, to the password file and the shadow entry', async () => {
    const shadow = join(tempDir(), 'shadow');
    writeFileSync(shadow, 'rescue:!:1::::::\n');
    const p = paths(shadow);
    const hash = shaCrypt('s3cret', '$6$0123456789abcdef');
    await finalizeRescue({ value: hash, hashed: true }, p, memoryLogger().log);
    expect(readFileSync(p.passwordFile, 'utf8')).toBe(hash);
    expect(readFileSync(shadow, 'utf8').split(':').slice(0, 2)).toEqual(['rescue', hash]);
  });

  test('a shadow file without the rescue user fails the command and leaves no marker', async () => {
    const shadow = join(tempDir(), 'shadow');
    writeFileSync(shadow, 'root:*:1::::::\n');
    const p = paths(shadow);
    const err = await finalizeRescue({ value: 'x', hashed: false }, p, memoryLogger().log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).toJSON()).toMatchObject({ type: 'CommandExecutionError', details: `Rescue Operation failed when setting the password of user rescue: user rescue not found in ${shadow}` });
    expect(await isRescued(p)).toBe(false);
  });

  test('an unwritable password file is IPA\'s error', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'file'), '');
    const p: RescuePaths = { passwordFile: join(d, 'file', 'pw'), markerFile: join(d, 'm'), shadowFile: undefined, user: 'rescue' };
    await expect(finalizeRescue({ value: 'x', hashed: false }, p, memoryLogger().log)).rejects.toThrow(
      /^Command execution failed: Rescue Operation failed when writing the hashed rescue password to the password file. Error E[A-Z]+: /,
    );
    expect(existsSync(p.markerFile)).toBe(false);
  });

  test('a hash that is not crypt(3) is written (IPA does) with a warning', async () => {
    const p = paths();
    const { log, lines } = memoryLogger();
    await finalizeRescue({ value: 'plaintext-by-mistake', hashed: true }, p, log);
    expect(lines().some((l) => String(l.msg).includes('does not look like a crypt(3) hash'))).toBe(true);
  });

  test('params: defaults as IPA, a hashed value with a separator is refused, unknown keys too', () => {
    const schema = rescueExtension.commands.finalize_rescue!.params;
    expect(schema.parse({})).toEqual({ rescue_password: '', hashed: false });
    expect(schema.safeParse({ rescue_password: '$5$a$b\nroot::0', hashed: true }).success).toBe(false);
    expect(schema.safeParse({ rescue_password: 'a:b', hashed: false }).success).toBe(true);
    expect(schema.safeParse({ rescue_password: 'x', hashed: 'yes' }).success).toBe(false);
    expect(schema.safeParse({ rescue_password: 'x', extra: 1 }).success).toBe(false);
  });
});

describe('rescue paths', () => {
  const config = (flags: Record<string, string | boolean>) => resolveConfig({ kernelParams: new Map(), flags, ipv6Enabled: false });

  test('IPA\'s /etc paths in a ramdisk; under the state dir when power is simulated; flags win', () => {
    expect(rescuePaths(config({}))).toEqual({ passwordFile: '/etc/ipa-rescue-config/ipa-rescue-password', markerFile: '/etc/.rescued', shadowFile: undefined, user: 'rescue' });
    expect(rescuePaths(config({ 'simulate-power': true, 'state-dir': '/run/x' }))).toMatchObject({ passwordFile: '/run/x/rescue/ipa-rescue-password', markerFile: '/run/x/rescue/rescued' });
    expect(rescuePaths(config({ 'rescue-marker-file': '/tmp/m', 'rescue-shadow-file': '/etc/shadow', 'rescue-user': 'ops' }))).toMatchObject({ markerFile: '/tmp/m', shadowFile: '/etc/shadow', user: 'ops' });
    expect(() => config({ 'rescue-user': 'Bad User' })).toThrow('expected a user name');
  });
});
