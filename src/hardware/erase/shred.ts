import type { Logger } from '../../log.ts';
import type { RunCommand } from '../../run.ts';

/** At most one progress line per device this often, besides every new pass. */
const PROGRESS_EVERY_SECONDS = 5;

/** `shred: /dev/sda: pass 1/2 (random)...512MiB/1.0GiB 50%` */
export function parseShredProgress(line: string): { pass: number; passes: number; percent: number | null } | undefined {
  const m = /pass (\d+)\/(\d+) \(([^)]*)\)\.\.\.(?:.*?(\d+)%)?/.exec(line);
  if (!m) return undefined;
  return { pass: Number(m[1]), passes: Number(m[2]), percent: m[4] === undefined ? null : Number(m[4]) };
}

export function shredArgs(device: string, opts: { iterations: number; zeroize: boolean }): string[] {
  return ['--force', ...(opts.zeroize ? ['--zero'] : []), '--verbose', '--iterations', String(opts.iterations), device];
}

/**
 * The overwrite fallback (spec §11.1 step 7): `shred --force [--zero] --verbose --iterations N`,
 * its progress in the log. Returns the error text when shred fails (IPA then reports the
 * device as unsupported), undefined on success.
 */
export async function shredDevice(run: RunCommand, log: Logger, device: string, opts: { iterations: number; zeroize: boolean }): Promise<string | undefined> {
  let lastLogged = 0;
  let lastPass = 0;
  try {
    await run('shred', shredArgs(device, opts), {
      onStderrLine: (line) => {
        const p = parseShredProgress(line);
        if (!p) return;
        const now = performance.now() / 1000;
        if (p.pass !== lastPass || now - lastLogged >= PROGRESS_EVERY_SECONDS) {
          lastPass = p.pass;
          lastLogged = now;
          log.info({ device, pass: p.pass, passes: p.passes, percent: p.percent }, 'shred progress');
        }
      },
    });
    return undefined;
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    log.error({ device, err: text }, 'shred failed');
    return text;
  }
}
