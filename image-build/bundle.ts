import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

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
    legalComments: 'none',
    logLevel: 'warning',
    // CommonJS dependencies call require() for Node built-ins.
    banner: { js: "import { createRequire as __inaRequire } from 'node:module'; const require = __inaRequire(import.meta.url);" },
  });
}
