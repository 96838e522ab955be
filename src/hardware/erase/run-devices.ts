import { AgentError, blockDeviceEraseError, errorMessage } from '../../errors.ts';

/**
 * Runs `work` for each item with at most `limit` at a time (spec §11.1 step 3: a pool of
 * min(concurrency, count)). Every item runs to its end even when another fails; the
 * outcomes come back in input order.
 */
export async function inPool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      try {
        results[i] = { status: 'fulfilled', value: await work(items[i]!) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/**
 * One failure is raised as it is (its IPA type intact); several become one
 * BlockDeviceEraseError that names each device, as IPA aggregates metadata erase errors.
 */
export function raiseFailures(failures: { device: string; error: unknown }[], summary: string): void {
  if (failures.length === 0) return;
  if (failures.length === 1 && failures[0]!.error instanceof AgentError) throw failures[0]!.error;
  throw blockDeviceEraseError(`${summary}: ${failures.map((f) => `"${f.device}": ${detailsOf(f.error)}`).join('; ')}`);
}

function detailsOf(err: unknown): string {
  return err instanceof AgentError ? err.details : errorMessage(err);
}
