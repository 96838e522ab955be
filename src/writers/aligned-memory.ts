/**
 * Page-aligned memory for O_DIRECT: a WebAssembly.Memory's backing store is mapped in whole
 * pages, so views at 4 KiB multiples are aligned as the kernel requires (spec/packages.md).
 * Shared, so that the hash worker reads the same bytes without a copy.
 */
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
}
type WasmMemoryConstructor = new (descriptor: { initial: number; maximum: number; shared: true }) => WasmMemory;

const WASM_PAGE = 64 * 1024;

export function alignedSharedMemory(bytes: number): SharedArrayBuffer {
  const Memory = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly.Memory;
  const pages = Math.ceil(bytes / WASM_PAGE);
  return new Memory({ initial: pages, maximum: pages, shared: true }).buffer;
}

/** Memory lent by AlignedMemoryPool: give it back with release() once nothing reads or writes it. */
export interface AlignedLease {
  readonly memory: SharedArrayBuffer;
  release(): void;
}

/**
 * One image write after another (a retry, the next prepare_image, a staged qcow2 and its
 * conversion) reuses the same aligned memory instead of allocating its own: the collector
 * frees a released SharedArrayBuffer only when it gets round to it, so each write would
 * otherwise add its buffers (about 20 MiB) to the peak RSS until then (measured: the
 * agent's VmHWM after two 2 GiB writes held two sets). Keeps one free region, the largest.
 */
export class AlignedMemoryPool {
  private free: SharedArrayBuffer | undefined;

  acquire(bytes: number): AlignedLease {
    let memory = this.free;
    if (memory && memory.byteLength >= bytes) this.free = undefined;
    else memory = alignedSharedMemory(bytes);
    let released = false;
    return {
      memory,
      release: () => {
        if (released) return;
        released = true;
        if (!this.free || this.free.byteLength < memory.byteLength) this.free = memory;
      },
    };
  }
}

/** The agent's pool for block sinks. */
export const sinkMemoryPool = new AlignedMemoryPool();
