import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { Agent } from './agent.ts';
import { ConfigError, OPTIONS, flagName, kernelParamsFrom, resolveConfig, type FlagValues } from './config.ts';
import { DiskGuard } from './hardware/disk-guard.ts';
import { collectInventory } from './hardware/inventory/inventory.ts';
import { renderInventory } from './hardware/inventory/table.ts';
import { createLogger } from './log.ts';
import { stepsCommand } from './steps/list-steps.ts';
import { runCommand } from './run.ts';
import { AGENT_VERSION } from './version.ts';

const USAGE = `Usage: ironic-node-agent <command> [options]

Commands:
  agent       run the deploy agent (looks itself up in Ironic, heartbeats, serves the command API)
  steps       check operator plugins and list the steps the agent offers (steps --help)
  inventory   print this machine's hardware inventory (a table on a terminal, else JSON; --json forces JSON)
  write-image stream an image onto a disk, verified, without Ironic (write-image --help)
  version     print the agent version
  help        this text; "ironic-node-agent agent --help" lists every option

The agent reads IPA's kernel parameters from /proc/cmdline (or --cmdline-file FILE);
flags override them. Logs are JSON lines on stdout.`;

/** Flags for every option of the table, plus --cmdline-file and --help. */
function optionFlags(): ParseArgsOptionsConfig {
  const flags: ParseArgsOptionsConfig = {
    'cmdline-file': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, spec] of Object.entries(OPTIONS)) {
    flags[flagName(name)] = typeof spec.default === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: spec.repeatable === true };
  }
  return flags;
}

function optionHelp(): string {
  const lines = ['Options (flag, kernel parameter, default):', '  --cmdline-file FILE   read kernel parameters from FILE instead of /proc/cmdline'];
  for (const [name, spec] of Object.entries(OPTIONS)) {
    const dflt = Array.isArray(spec.default) ? spec.default.join(',') : spec.default;
    lines.push(`  --${flagName(name)}${spec.param ? `  (${spec.param})` : ''}${dflt === undefined || dflt === '' ? '' : `  [${String(dflt)}]`}`);
    lines.push(`      ${spec.help}`);
  }
  lines.push('Boolean flags also take a --no- prefix, e.g. --no-enable-auto-tls.');
  return lines.join('\n');
}

async function runAgent(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: optionFlags(), allowNegative: true, strict: true });
  if (values.help) {
    process.stderr.write(`${optionHelp()}\n`);
    return 0;
  }
  const cmdlineFile = values['cmdline-file'];
  const config = resolveConfig({
    kernelParams: kernelParamsFrom(typeof cmdlineFile === 'string' ? cmdlineFile : undefined),
    flags: values as FlagValues,
  });
  const { log, ring } = createLogger({ debug: config.debug });
  const agent = new Agent({ config, log, logRing: ring });

  const shutdown = (signal: string) => {
    log.info({ signal }, 'stopping');
    void agent.stop();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  // A restarted agent cannot authenticate to Ironic again (spec §3.5), so a stray error
  // is logged and the agent keeps serving rather than exiting.
  process.on('uncaughtException', (err) => log.error({ err: err.stack ?? String(err) }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => log.error({ err: String(err) }, 'unhandled rejection'));

  try {
    await agent.run();
    log.flush();
    return 0;
  } catch (err) {
    log.fatal({ err: err instanceof Error ? err.message : String(err) }, 'agent failed');
    process.stderr.write(`ironic-node-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    await agent.stop();
    log.flush();
    return 1;
  }
}

/** `inventory [--json] [agent options]`: what poll.get_hardware_info would answer (spec §10). */
async function runInventory(argv: string[]): Promise<number> {
  const flags: ParseArgsOptionsConfig = { ...optionFlags(), json: { type: 'boolean' } };
  const { values } = parseArgs({ args: argv, options: flags, allowNegative: true, strict: true });
  if (values.help) {
    process.stderr.write('Usage: ironic-node-agent inventory [--json] [--allow-device DEV]... [--cmdline-file FILE]\n');
    return 0;
  }
  const cmdlineFile = values['cmdline-file'];
  const { json, ...optionValues } = values;
  const config = resolveConfig({
    kernelParams: kernelParamsFrom(typeof cmdlineFile === 'string' ? cmdlineFile : undefined),
    flags: optionValues as FlagValues,
  });
  const inventory = await collectInventory({
    run: runCommand,
    diskGuard: new DiskGuard({ allowDevices: config.allowDevice }),
    bootif: config.bootif,
    skipBmcDetect: false,
  });
  process.stdout.write(json === true || !process.stdout.isTTY ? `${JSON.stringify(inventory, null, 2)}\n` : renderInventory(inventory));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'agent':
        return await runAgent(rest);
      case 'steps':
        return await stepsCommand(rest);
      case 'write-image': {
        const { writeImageCommand } = await import('./writers/write-image-cli.ts');
        return await writeImageCommand(rest);
      }
      case 'inventory':
        return await runInventory(rest);
      case 'version':
      case '--version':
        process.stdout.write(`${AGENT_VERSION}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stderr.write(`${USAGE}\n`);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`ironic-node-agent: unknown command "${cmd}"\n\n${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`ironic-node-agent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
