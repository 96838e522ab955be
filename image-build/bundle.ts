import { build, type Plugin } from 'esbuild';
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

/**
 * Node flags the ramdisk runs the bundle with (and the bench, to measure the same agent).
 * A 1 MiB semi-space: the image data path allocates only small short-lived objects per chunk,
 * and V8 otherwise grows the young generation to 16 MiB under that allocation rate; measured
 * writing a 2 GiB image, peak RSS 14-15 MiB lower and no throughput lost.
 * No optimizing compilers past Sparkplug (`--max-opt=1`): the agent's JavaScript only steers
 * native work (socket reads, hashing, decoding, O_DIRECT writes), and Maglev and TurboFan,
 * once a write makes the loop hot, bring in 7 MiB of their own machine code from the node
 * binary plus their compile zones. Measured on 2 GiB raw, zstd and gzip writes, two per
 * agent: peak RSS 113-118 -> 100-104 MiB, idle 72.6 -> 69.1 MiB, the main thread's CPU time
 * per write and the start to the first lookup (216 against 214 ms) the same within noise.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--max-opt=1'];

/**
 * The agent as one ES module file for the ramdisk: no node_modules, no type stripping at
 * start. Deterministic for the same sources and dependency versions.
 */
export async function bundleAgent(outfile: string): Promise<void> {
  await build({
    entryPoints: [ENTRY],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minifySyntax: true,
    // Without comments (some have non-ASCII characters) the source is Latin-1, which V8 keeps
    // one byte per character for the agent's life: 2.4 MiB instead of a two-byte 6.2 MiB copy
    // of 3.3 MB (measured in a heap snapshot of the idle agent). Names stay readable in stack traces.
    minifyWhitespace: true,
    legalComments: 'none',
    logLevel: 'warning',
    // CommonJS dependencies call require() for Node built-ins.
    banner: { js: "import { createRequire as __inaRequire } from 'node:module'; const require = __inaRequire(import.meta.url);" },
    plugins: [builtinsByRequire],
  });
}

const BUILTIN = new Set(builtinModules);

/** The getter exports the bundle imports (execa's): read at start like any other export. */
const IMPORTED_GETTERS: Record<string, readonly string[]> = { util: ['aborted'] };

/**
 * Imports of Node built-ins become require() plus named bindings. An ES import of a built-in
 * reads every export at start, getters included: node:http's WebSocket getter loads Node's
 * bundled undici (about 15 ms of the agent's start, measured with --cpu-prof), tls's
 * rootCertificates parses every CA certificate, crypto's subtle loads WebCrypto, and fs.F_OK
 * and crypto.fips print deprecation warnings. Getters are left out unless listed above, so
 * importing another one fails the build ("No matching export") instead of costing start-up.
 */
const builtinsByRequire: Plugin = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (!BUILTIN.has(name) || args.kind !== 'import-statement') return undefined;
      return { path: name, namespace: 'node-builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (args) => {
      const mod = createRequire(import.meta.url)(`node:${args.path}`) as object;
      const names = Object.getOwnPropertyNames(mod).filter(
        (k) =>
          /^[A-Za-z_$][\w$]*$/.test(k) &&
          k !== 'default' &&
          (Object.getOwnPropertyDescriptor(mod, k)?.get === undefined || IMPORTED_GETTERS[args.path]?.includes(k) === true),
      );
      const spec = JSON.stringify(`node:${args.path}`);
      return {
        contents: `const m = require(${spec});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`,
        loader: 'js',
      };
    });
  },
};
