import { execFile } from 'node:child_process';
import { BuildError } from './errors.ts';

/** Debian packages providing the host tools the build runs, for the "missing tool" message. */
const HOST_PACKAGE: Record<string, string> = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  depmod: 'kmod',
  modprobe: 'kmod',
  strip: 'binutils',
  readelf: 'binutils',
  zstd: 'zstd',
  lz4: 'lz4',
  xz: 'xz-utils',
  gzip: 'gzip',
};

export interface ExecOptions {
  cwd?: string;
  timeoutSeconds?: number;
}

/** Runs a host tool (argument array, no shell) and returns its stdout; failures are BuildErrors. */
export function exec(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, timeout: (opts.timeoutSeconds ?? 600) * 1000, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          const pkg = HOST_PACKAGE[file];
          return reject(new BuildError(`${file} is not installed on this machine${pkg ? ` (apt-get install ${pkg})` : ''}`));
        }
        const tail = stderr.trim().split('\n').slice(-6).join('\n  ');
        reject(new ExecError(`${file} ${args.join(' ')} failed${tail ? `:\n  ${tail}` : ''}`, stderr));
      },
    );
  });
}

export class ExecError extends BuildError {
  override name = 'ExecError';
  readonly stderr: string;
  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}
