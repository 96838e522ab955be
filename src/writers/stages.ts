/**
 * Small stream stages of the image pipeline (coreos-installer's `peek`, `hash` and friends):
 * each wraps an async iterable of chunks and is one itself, so a pipeline reads as a sentence.
 * Chunks are borrowed (source.ts): a stage that keeps one past the next read copies it.
 */

/** The first `bytes` of a stream (fewer if it is shorter), and the whole stream still to read. */
export async function peek(input: AsyncIterable<Buffer>, bytes: number): Promise<{ head: Buffer; stream: AsyncIterable<Buffer> }> {
  const it = input[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < bytes) {
    const next = await it.next();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(Buffer.from(next.value));
    have += next.value.length;
  }
  // Only the head's bytes: a view of the whole concatenation would keep all of it (a first
  // decoded chunk is up to 1 MiB) for as long as the caller keeps the head, the whole write.
  const head = Buffer.concat(chunks, Math.min(have, bytes));
  async function* stream(): AsyncIterable<Buffer> {
    let finished = done;
    try {
      yield* chunks;
      chunks.length = 0;
      while (!finished) {
        const next = await it.next();
        if (next.done) finished = true;
        else yield next.value;
      }
    } finally {
      if (!finished) await it.return?.();
    }
  }
  return { head, stream: stream() };
}

/** Passes chunks through, telling `observe` about each one (byte counts, hashing). */
export async function* tap(input: AsyncIterable<Buffer>, observe: (chunk: Buffer) => void): AsyncIterable<Buffer> {
  for await (const chunk of input) {
    observe(chunk);
    yield chunk;
  }
}
