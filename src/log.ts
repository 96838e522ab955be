import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { maskSecrets } from './secrets.ts';

export type { Logger } from 'pino';

/**
 * The most recent log lines, kept in memory so that log.collect_system_logs can ship the
 * agent's own log (spec §7.4) without a log file on the ramdisk's tmpfs. Bounded by bytes.
 */
export class LogRing extends Writable {
  private lines: string[] = [];
  private bytes = 0;
  private readonly maxBytes: number;

  constructor(maxBytes = 8 * 1024 * 1024) {
    super();
    this.maxBytes = maxBytes;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const text = chunk.toString('utf8');
    this.lines.push(text);
    this.bytes += text.length;
    while (this.bytes > this.maxBytes && this.lines.length > 1) {
      this.bytes -= this.lines.shift()!.length;
    }
    done();
  }

  contents(): string {
    return this.lines.join('');
  }
}

export interface LoggerOptions {
  debug?: boolean;
  /** Where JSON lines go besides the ring; stdout by default. */
  destination?: NodeJS.WritableStream;
  ring?: LogRing;
}

export function createLogger(opts: LoggerOptions = {}): { log: Logger; ring: LogRing } {
  const ring = opts.ring ?? new LogRing();
  const level = opts.debug ? 'debug' : 'info';
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: true });
  const log = pino(
    { level, base: { name: 'ironic-node-agent' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream([
      { level, stream: destination },
      { level, stream: ring },
    ]),
  );
  return { log, ring };
}

/** A copy of `value` that is safe to log: secret-looking values masked, long strings cut. */
export function redact(value: unknown): unknown {
  return maskSecrets(value, { maxString: 512 });
}
