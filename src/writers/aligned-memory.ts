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
