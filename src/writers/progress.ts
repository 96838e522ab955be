import type { Logger } from '../log.ts';

/** What an operator sees of a running image write: in the agent log, the command status, the CLI. */
export interface ProgressReport {
  image: string;
  phase: 'downloading' | 'converting' | 'finishing';
  /** Bytes received from the source (compressed, if the image is). */
  bytes_received: number;
  /** Size of the source when known (Content-Length or file size). */
  bytes_total: number | null;
  /** Bytes of the image produced so far (after decoding). */
  bytes_written: number;
  rate_mb_per_s: number;
  eta_seconds: number | null;
  percent: number | null;
}

export interface ProgressOptions {
  image: string;
  log: Logger;
  /** The running command's status (ctx.setProgress), at most once a second. */
  publish?(report: ProgressReport): void;
  /** Human output (the CLI's progress bar), at most ten times a second. */
  render?(report: ProgressReport): void;
  logIntervalSeconds?: number;
  now?(): number;
}

/**
 * Bytes, rate and ETA of an image write. Hot-path calls only store numbers; reports are
 * built on a timer-free schedule (checked on update), so nothing formats per chunk.
 */
export class Progress {
  private readonly opts: ProgressOptions;
  private readonly now: () => number;
  private readonly started: number;
  private received = 0;
  private written = 0;
  private total: number | null = null;
  private phase: ProgressReport['phase'] = 'downloading';
  private fraction: number | null = null;
  private lastLog: number;
  private lastPublish = 0;
  private lastRender = 0;
  /** Rate over a sliding window: [time, bytes] samples. */
  private samples: [number, number][] = [];

  constructor(opts: ProgressOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now() / 1000);
    this.started = this.now();
    this.lastLog = this.started;
  }

  /** A new attempt or a restarted transfer: counts start again. */
  restart(total: number | undefined): void {
    this.received = 0;
    this.written = 0;
    this.total = total ?? null;
    this.phase = 'downloading';
    this.fraction = null;
    this.samples = [];
  }

  setTotal(total: number | undefined): void {
    this.total = total ?? null;
  }

  onReceived(bytes: number): void {
    this.received = bytes;
    this.tick();
  }

  onWritten(bytes: number): void {
    this.written = bytes;
    this.tick();
  }

  /** qemu-img's own progress while it converts, as a fraction. */
  converting(fraction: number): void {
    this.phase = 'converting';
    this.fraction = fraction;
    this.tick(true);
  }

  finishing(): void {
    this.phase = 'finishing';
    this.tick(true);
  }

  report(): ProgressReport {
    const t = this.now();
    const done = this.phase === 'converting' && this.fraction !== null ? this.fraction : this.total ? this.received / this.total : null;
    const rate = this.rate(t);
    const remaining = this.phase === 'downloading' && this.total !== null && rate > 0 ? (this.total - this.received) / (rate * 1e6) : null;
    return {
      image: this.opts.image,
      phase: this.phase,
      bytes_received: this.received,
      bytes_total: this.total,
      bytes_written: this.written,
      rate_mb_per_s: Math.round(rate * 10) / 10,
      eta_seconds: remaining === null ? null : Math.max(0, Math.round(remaining)),
      percent: done === null ? null : Math.min(100, Math.round(done * 1000) / 10),
    };
  }

  /** Average rate since the start, for the final log line. */
  averageMbPerSecond(bytes: number): number {
    const elapsed = this.now() - this.started;
    return elapsed > 0 ? Math.round(bytes / 1e6 / elapsed) : 0;
  }

  private tick(force = false): void {
    const t = this.now();
    if (force || t - this.lastRender >= 0.1) {
      this.lastRender = t;
      const last = this.samples.at(-1);
      if (!last || t - last[0] >= 0.25) {
        this.samples.push([t, this.received]);
        while (this.samples.length > 2 && t - this.samples[0]![0] > 5) this.samples.shift();
      }
      if (this.opts.render) this.opts.render(this.report());
    }
    if (this.opts.publish && (force || t - this.lastPublish >= 1)) {
      this.lastPublish = t;
      this.opts.publish(this.report());
    }
    if (t - this.lastLog >= (this.opts.logIntervalSeconds ?? 5)) {
      this.lastLog = t;
      this.opts.log.info({ progress: this.report() }, 'image write progress');
    }
  }

  private rate(t: number): number {
    const first = this.samples[0];
    if (!first || t - first[0] < 0.2) {
      const elapsed = t - this.started;
      return elapsed > 0 ? this.received / 1e6 / elapsed : 0;
    }
    return (this.received - first[1]) / 1e6 / (t - first[0]);
  }
}
