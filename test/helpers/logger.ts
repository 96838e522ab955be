import { Writable } from 'node:stream';
import { createLogger, type Logger, type LogRing } from '../../src/log.ts';

/** A real pino logger whose lines are kept for assertions instead of printed. */
export function memoryLogger(): { log: Logger; ring: LogRing; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const { log, ring } = createLogger({ debug: true, destination });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, ring, lines };
}
