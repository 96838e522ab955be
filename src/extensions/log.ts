import { z } from 'zod';
import { collectSystemLogs } from '../hardware/system-logs.ts';
import { command, type Extension } from './types.ts';

/** log.collect_system_logs: a base64 tar.gz that Ironic stores as the deploy/clean logs (spec §7.4). */
export const logExtension: Extension = {
  name: 'log',
  commands: {
    collect_system_logs: command('sync', z.strictObject({}), async (_p, ctx) => {
      const tgz = await collectSystemLogs({ run: ctx.run, log: ctx.log, agentLog: ctx.logRing.contents() });
      return { system_logs: tgz.toString('base64') };
    }),
  },
};
