import { randomUUID } from 'node:crypto';
import type { CommandError } from '../errors.ts';

export type CommandStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CLEAN_VERSION_MISMATCH';

/** The five keys IPA serializes, and nothing else (spec §6.3). */
export interface CommandResultJSON {
  id: string;
  command_name: string;
  command_status: CommandStatus;
  command_error: CommandError | null;
  command_result: unknown;
}

/** One command as the conductor sees it in GET /v1/commands/. */
export class CommandRecord {
  readonly id = randomUUID();
  readonly name: string;
  status: CommandStatus;
  error: CommandError | null = null;
  result: unknown = null;
  progress: unknown = undefined;
  private readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(name: string, status: CommandStatus) {
    this.name = name;
    this.status = status;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    if (status !== 'RUNNING') this.resolveFinished();
  }

  get running(): boolean {
    return this.status === 'RUNNING';
  }

  finish(status: Exclude<CommandStatus, 'RUNNING'>, result: unknown, error: CommandError | null): void {
    this.status = status;
    this.result = result;
    this.error = error;
    this.progress = undefined;
    this.resolveFinished();
  }

  /** Resolves once the command is no longer RUNNING (`wait=true`). */
  wait(): Promise<void> {
    return this.finished;
  }

  toJSON(): CommandResultJSON {
    return {
      id: this.id,
      command_name: this.name,
      command_status: this.status,
      command_error: this.error,
      command_result: this.running && this.progress !== undefined ? { progress: this.progress } : this.result,
    };
  }
}

/** Every command since the (possibly simulated) boot, in execution order, never pruned (spec §6.2). */
export class CommandLog {
  private records: CommandRecord[] = [];

  add(record: CommandRecord): void {
    this.records.push(record);
  }

  list(): readonly CommandRecord[] {
    return this.records;
  }

  last(): CommandRecord | undefined {
    return this.records.at(-1);
  }

  get(id: string): CommandRecord | undefined {
    return this.records.find((r) => r.id === id);
  }

  /** A freshly booted ramdisk has run nothing yet (spec §8.7 "freshly booted"). */
  clear(): void {
    this.records = [];
  }
}
