/** What a lookup's `config.agent_token` means for the token the agent holds (spec §3.5). */
export type TokenDecision =
  | { action: 'store'; token: string }
  /** "******" while we hold a token: the conductor already issued ours; keep it. */
  | { action: 'keep' }
  /** "******" and no token: this process restarted mid-operation and can never authenticate. */
  | { action: 'fatal' }
  /** Absent or too short: not a token; nothing changes. */
  | { action: 'ignore' };

export const MASKED_TOKEN = '******';
const MIN_TOKEN_LENGTH = 32;

export function decideToken(held: string | undefined, received: string | undefined): TokenDecision {
  if (received === MASKED_TOKEN) return held ? { action: 'keep' } : { action: 'fatal' };
  if (received !== undefined && received.length >= MIN_TOKEN_LENGTH) return { action: 'store', token: received };
  return { action: 'ignore' };
}
