/**
 * Text of an Ironic error response, extracted as IPA does (spec §2): `error_message`
 * (itself possibly JSON text), then `faultstring`, else `title`, else the raw body.
 */
export function ironicErrorText(status: number, body: string): string {
  let text = body;
  try {
    let parsed: unknown = JSON.parse(body);
    if (isRecord(parsed) && 'error_message' in parsed) {
      parsed = parsed.error_message;
      if (typeof parsed === 'string') {
        try {
          parsed = JSON.parse(parsed);
        } catch {
          // a plain string error_message is the text itself
        }
      }
    }
    if (typeof parsed === 'string') text = parsed;
    else if (isRecord(parsed)) {
      const fault = parsed.faultstring ?? parsed.title;
      if (typeof fault === 'string') text = fault;
    }
  } catch {
    // not JSON: the raw body is the text
  }
  return `Error ${status}: ${text}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Ironic could not be reached at any of its URLs (or the TLS handshake failed). */
export class IronicConnectionError extends Error {
  override name = 'IronicConnectionError';
}

/** Ironic answered a heartbeat with something other than 202. */
export class HeartbeatError extends Error {
  override name = 'HeartbeatError';
  readonly status: number;
  constructor(status: number, text: string) {
    super(text);
    this.status = status;
  }

  /** Ironic wiped or never issued our token: the node was power-cycled or the deploy ended. */
  get tokenRejected(): boolean {
    return this.status === 400 && /agent token/i.test(this.message);
  }
}

/** 409 on heartbeat: the node is locked and has no agent_url yet (spec §4.2); only a warning. */
export class HeartbeatConflictError extends HeartbeatError {
  override name = 'HeartbeatConflictError';
}

/** Lookup did not succeed within ipa-lookup-timeout (spec §3.3). */
export class LookupNodeError extends Error {
  override name = 'LookupNodeError';
}
