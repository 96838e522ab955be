import { readFile } from 'node:fs/promises';
import { createGzip } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import type { Logger } from '../log.ts';
import type { RunCommand } from '../run.ts';

/** Each collected file is cut to its last bytes beyond this, so the bundle stays small. */
const MAX_ENTRY_BYTES = 16 * 1024 * 1024;

/** What IPA's collect_system_logs puts into the bundle, by file name (spec §7.4). */
const COMMANDS: readonly (readonly [name: string, file: string, args: readonly string[]])[] = [
  ['df', 'df', ['-a']],
  ['dmesg', 'dmesg', []],
  ['efibootmgr', 'efibootmgr', ['-v']],
  ['iptables', 'iptables', ['-L']],
  ['ip_addr', 'ip', ['addr']],
  ['lsblk', 'lsblk', ['--all', '-o', 'NAME,KNAME,MAJ:MIN,RM,SIZE,RO,TYPE,MOUNTPOINT,FSTYPE,UUID,PARTUUID,MODEL,SERIAL']],
  ['lsblk-full', 'lsblk', ['--all', '--bytes', '--output-all', '--pairs']],
  ['blkid', 'blkid', []],
  ['lshw', 'lshw', ['-quiet', '-json']],
  ['mount', 'mount', []],
  ['multipath', 'multipath', ['-ll']],
  ['parted', 'parted', ['-l']],
  ['ps', 'ps', ['aux']],
];

export interface LogSources {
  run: RunCommand;
  log: Logger;
  /** The agent's own recent log lines. */
  agentLog: string;
}

/**
 * The tar.gz that log.collect_system_logs returns (spec §7.4): the journal of this boot,
 * the agent's own log, and the output of the diagnostic commands. A command that is missing
 * or fails is left out; collecting logs must never fail a deploy on its own.
 */
export async function collectSystemLogs(src: LogSources): Promise<Buffer> {
  const entries: { name: string; data: Buffer }[] = [];
  const add = (name: string, data: string | Buffer) => {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    entries.push({ name, data: buf.length > MAX_ENTRY_BYTES ? buf.subarray(buf.length - MAX_ENTRY_BYTES) : buf });
  };

  add('ironic-node-agent.log', src.agentLog);
  try {
    add('journal', await src.run('journalctl', ['--full', '--no-pager', '-b'], { timeoutSeconds: 60 }));
  } catch {
    const syslog = await readFile('/var/log/syslog').catch(() => undefined);
    if (syslog) add('var/log/syslog', syslog);
  }
  const mdstat = await readFile('/proc/mdstat', 'utf8').catch(() => undefined);
  if (mdstat !== undefined) add('mdstat', mdstat);
  for (const [name, file, args] of COMMANDS) {
    try {
      add(name, await src.run(file, args, { timeoutSeconds: 30 }));
    } catch (err) {
      src.log.debug({ name, err: String(err) }, 'log collection: command skipped');
    }
  }
  return tarGz(entries);
}

export async function tarGz(entries: readonly { name: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tarPack();
  const gzip = createGzip();
  const chunks: Buffer[] = [];
  gzip.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
    pack.on('error', reject);
  });
  pack.pipe(gzip);
  const mtime = new Date();
  for (const e of entries) pack.entry({ name: e.name, size: e.data.length, mtime, mode: 0o644 }, e.data);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
