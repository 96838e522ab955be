import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

export const QEMU_BIN = '/usr/bin/qemu-system-x86_64';
/** Debian's ovmf package: the firmware code (read-only) and the template of its variable store. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const RELAY = fileURLToPath(new URL('./tcp-relay.ts', import.meta.url));

/** Sparse raw files `<dir>/<name>.img` of `bytes` each, for a VM's virtio disks. */
export async function sparseDiskImages(dir: string, names: readonly string[], bytes: number): Promise<string[]> {
  const paths: string[] = [];
  for (const name of names) {
    const path = join(dir, `${name}.img`);
    await writeFile(path, '');
    await truncate(path, bytes);
    paths.push(path);
  }
  return paths;
}

export interface GuestForward {
  /** Address and port the guest connects to (inside QEMU's user network, 10.0.2.0/24). */
  guestAddress: string;
  guestPort: number;
  /** Where the connection goes on the host: always 127.0.0.1. */
  hostPort: number;
}

export interface HostForward {
  /** 127.0.0.1:hostPort on the host reaches guestPort in the guest. */
  hostPort: number;
  guestPort: number;
}

export interface VmOptions {
  kernel: string;
  initramfs: string;
  /** Kernel parameters after `console=ttyS0 panic=-1`. */
  append: string;
  /** Raw disk image files, attached as virtio disks (vda, vdb, ...). */
  disks?: string[];
  /** MAC of the one NIC (virtio-net). */
  mac: string;
  hostForwards?: HostForward[];
  guestForwards?: GuestForward[];
  memoryMiB?: number;
  /**
   * Boot through UEFI firmware (OVMF) instead of SeaBIOS: the kernel then runs as an EFI
   * application, with EFI variables in `vars` (a copy of OVMF_VARS, writable) for efibootmgr.
   */
  uefi?: { vars: string };
  /** Each serial console line, e.g. for printing while debugging. */
  onLine?: (line: ConsoleLine) => void;
}

export interface ConsoleLine {
  /** Seconds since QEMU was spawned. */
  t: number;
  text: string;
}

/**
 * The deploy ramdisk booted in QEMU with TCG (no KVM in CI), a serial console on stdout and
 * user-mode networking with `restrict=on`: the guest reaches nothing but the guestfwd
 * targets, which are 127.0.0.1 ports of the host, and the host reaches it only through the
 * hostfwd ports, bound to 127.0.0.1. Every guest connection to a guestfwd address is relayed
 * by its own process (tcp-relay.ts), so HTTP clients may open as many as they like.
 */
export class RamdiskVm {
  readonly lines: ConsoleLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private readonly started = performance.now();
  private waiters: { test: (l: ConsoleLine) => boolean; resolve: (l: ConsoleLine) => void }[] = [];

  private constructor(child: ChildProcess, onLine?: (line: ConsoleLine) => void) {
    this.child = child;
    let buffer = '';
    const take = (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        // SeaBIOS and the kernel put escape sequences and carriage returns on the console.
        const text = buffer.slice(0, nl).replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '');
        buffer = buffer.slice(nl + 1);
        const line = { t: this.seconds(), text };
        this.lines.push(line);
        onLine?.(line);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
      }
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static available(): boolean {
    return existsSync(QEMU_BIN);
  }

  static start(o: VmOptions): RamdiskVm {
    const nic = [
      'user',
      'model=virtio-net-pci',
      `mac=${o.mac}`,
      'restrict=on',
      ...(o.hostForwards ?? []).map((f) => `hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`),
      ...(o.guestForwards ?? []).map((f) => `guestfwd=tcp:${f.guestAddress}:${f.guestPort}-cmd:${process.execPath} ${RELAY} ${f.hostPort}`),
    ].join(',');
    const args = [
      '-machine', 'q35', '-accel', 'tcg', '-cpu', 'qemu64', '-m', String(o.memoryMiB ?? 2048), '-smp', '1',
      '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-nodefaults',
      ...(o.uefi ? [
        '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
        '-drive', `if=pflash,format=raw,unit=1,file=${o.uefi.vars}`,
      ] : []),
      '-kernel', o.kernel, '-initrd', o.initramfs,
      '-append', `console=ttyS0 panic=-1 ${o.append}`,
      '-device', 'virtio-rng-pci',
      '-nic', nic,
      ...(o.disks ?? []).flatMap((d) => ['-drive', `file=${d},if=virtio,format=raw,cache=unsafe`]),
    ];
    const child = spawn(QEMU_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // INA_TEST_VM_CONSOLE=1 shows the serial console while the test runs.
    const show = process.env.INA_TEST_VM_CONSOLE === '1' ? (l: ConsoleLine) => process.stderr.write(`[vm ${l.t.toFixed(1).padStart(6)}] ${l.text}\n`) : undefined;
    return new RamdiskVm(child, o.onLine ?? show);
  }

  /** Seconds since QEMU was spawned. */
  seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first console line (already seen or coming) that matches. */
  waitForLine(match: string | RegExp, timeoutSeconds: number): Promise<ConsoleLine> {
    const test = (l: ConsoleLine) => (typeof match === 'string' ? l.text.includes(match) : match.test(l.text));
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no console line matching ${String(match)} within ${timeoutSeconds} s; last lines:\n${this.tail()}`));
      }, timeoutSeconds * 1000);
      this.waiters.push({ test, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  count(match: string | RegExp): number {
    return this.lines.filter((l) => (typeof match === 'string' ? l.text.includes(match) : match.test(l.text))).length;
  }

  /** Waits for QEMU to exit by itself (the guest powered off); throws after the timeout. */
  async waitForExit(timeoutSeconds: number): Promise<number | null> {
    const timeout = delay(timeoutSeconds * 1000).then(() => 'timeout' as const);
    const result = await Promise.race([this.exited, timeout]);
    if (result === 'timeout') throw new Error(`the VM did not power off within ${timeoutSeconds} s; last lines:\n${this.tail()}`);
    return result;
  }

  tail(n = 40): string {
    return this.lines.slice(-n).map((l) => `[${l.t.toFixed(1).padStart(6)}] ${l.text}`).join('\n');
  }

  /** Kills QEMU (by its own PID) if it still runs. */
  async stop(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}
