import { createHash, randomBytes } from 'node:crypto';

/**
 * How fast one core hashes in memory, with the OpenSSL that Node (and so the agent) uses:
 * no read, no write, no copy. One SHA stream cannot be split across cores, so no writer
 * that verifies while it streams gets past this, whatever the disk.
 */
export function hashCeilingMbps(algorithm: 'sha256' | 'sha512', totalMiB = 1024, runs = 3): number {
  const chunk = randomBytes(4 * 2 ** 20);
  let best = Infinity;
  for (let run = 0; run < runs; run++) {
    const h = createHash(algorithm);
    const started = performance.now();
    for (let i = 0; i < totalMiB / 4; i++) h.update(chunk);
    h.digest();
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  return Math.round((totalMiB * 2 ** 20) / 1e6 / best);
}
