import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCompression } from './compress.ts';
import { BuildError } from './errors.ts';
import { buildRamdisk, type BuildOptions } from './pipeline.ts';

const USAGE = `Usage: npm run image-build -- [options]      (or image-build/build.sh [options])

Builds the deploy ramdisk: OUTPUT/vmlinuz, OUTPUT/initramfs and OUTPUT/manifest.json, from
Debian 12 packages (apt-get download; run apt-get update once first), the pinned Node binary
and the agent. Same inputs, same output bytes.

Options:
  -o, --output DIR            where the files go [out/ramdisk]
  --cache DIR                 downloaded .debs, reused by later builds [node_modules/.cache/ironic-node-agent-image-build]
  --without-bootc             leave podman and runc out (no bootc deploys; a smaller image)
  --with-ssh                  an SSH server (dropbear) for Ironic's ansible deploy interface; it
                              accepts only the keys given as sshkey="..." on the kernel command line
                              and those of --ssh-authorized-keys
  --ssh-authorized-keys FILE  public keys built into the image (needs --with-ssh)
  --with-python               Python 3 for Ansible's modules
  --plugins DIR               operator plugins, copied to /usr/lib/ironic-node-agent/plugins
  --overlay DIR               a directory tree copied over the image root (CA bundles, config)
  --module NAME               one more kernel module to load at boot (repeatable)
  --compress METHOD           zstd (default), xz, gzip, lz4 or none
  --compress-level N          zstd 1-19 [19], xz 0-9 [6], gzip 1-9 [9], lz4 1-12 [9]
  --kernel-package NAME       a Debian kernel package, e.g. linux-image-6.1.0-56-amd64
                              [what linux-image-amd64 depends on]
  --arch ARCH                 amd64 (the only one supported) [amd64]
  --keep-work                 keep OUTPUT/.work (the unpacked root filesystem) for inspection
  -h, --help                  this text
Environment: SOURCE_DATE_EPOCH sets the time stamp of every file in the initramfs [0].`;

export function parseBuildArgs(argv: string[], progress: (line: string) => void): BuildOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      output: { type: 'string', short: 'o', default: 'out/ramdisk' },
      cache: { type: 'string' },
      'without-bootc': { type: 'boolean', default: false },
      'with-ssh': { type: 'boolean', default: false },
      'ssh-authorized-keys': { type: 'string' },
      'with-python': { type: 'boolean', default: false },
      plugins: { type: 'string' },
      overlay: { type: 'string' },
      module: { type: 'string', multiple: true, default: [] },
      compress: { type: 'string', default: 'zstd' },
      'compress-level': { type: 'string' },
      'kernel-package': { type: 'string' },
      arch: { type: 'string', default: 'amd64' },
      'keep-work': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const epoch = process.env.SOURCE_DATE_EPOCH ?? '0';
  if (!/^\d+$/.test(epoch)) throw new BuildError(`SOURCE_DATE_EPOCH=${epoch}: not a number of seconds`);
  const opt = (v: string | undefined) => (v === undefined ? undefined : resolve(v));
  return {
    output: resolve(values.output),
    cache: resolve(values.cache ?? 'node_modules/.cache/ironic-node-agent-image-build'),
    arch: values.arch,
    bootc: !values['without-bootc'],
    ssh: values['with-ssh'],
    python: values['with-python'],
    authorizedKeys: opt(values['ssh-authorized-keys']),
    plugins: opt(values.plugins),
    overlay: opt(values.overlay),
    extraModules: values.module,
    compression: parseCompression(values.compress, values['compress-level']),
    kernelPackage: values['kernel-package'],
    sourceDateEpoch: Number(epoch),
    keepWork: values['keep-work'],
    progress,
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export async function main(argv: string[]): Promise<number> {
  const progress = (line: string) => process.stderr.write(`image-build: ${line}\n`);
  try {
    const options = parseBuildArgs(argv, progress);
    if (!options) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const r = await buildRamdisk(options);
    process.stdout.write(
      `built in ${r.seconds.toFixed(1)} s:\n` +
        `  ${r.kernel.path}  ${mb(r.kernel.bytes)}  sha256 ${r.kernel.sha256}\n` +
        `  ${r.initramfs.path}  ${mb(r.initramfs.bytes)} (${mb(r.cpioBytes)} uncompressed)  sha256 ${r.initramfs.sha256}\n` +
        `  ${r.manifest}\n` +
        `  total ${mb(r.kernel.bytes + r.initramfs.bytes)}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof BuildError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`image-build: ${err.message}\n`);
      return err instanceof BuildError ? 1 : 2;
    }
    throw err;
  }
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
