import type { Logger } from '../log.ts';
import { HeartbeatConflictError, HeartbeatError, ironicErrorText } from './errors.ts';
import type { IronicHttp } from './http.ts';
import { parseLookupBody, type ParsedLookup } from './schemas.ts';
import {
  AGENT_TOKEN,
  AGENT_VERIFY_CA,
  AGENT_VERSION_FIELD,
  FALLBACK_VERSION,
  atLeast,
  formatVersion,
  lower,
  parseVersion,
  type Microversion,
} from './version.ts';

export type LookupOutcome =
  | ({ kind: 'found' } & ParsedLookup)
  /** 409: the node is locked by the conductor (spec §3.3): pause longer. */
  | { kind: 'locked'; detail: string }
  /** Anything else: not found yet, wrong state, bad answer. Retry. */
  | { kind: 'retry'; detail: string };

export interface HeartbeatBody {
  callbackUrl: string;
  token: string | undefined;
  /** PEM of the auto-TLS certificate, when the agent made one. */
  verifyCa?: string | undefined;
}

/**
 * The agent's calls to the Ironic API (spec §2-§4): version discovery, lookup and heartbeat.
 * Retries and back-off live in the callers; this class makes single calls.
 */
export class IronicClient {
  private discovered: Microversion | undefined;
  private readonly http: IronicHttp;
  private readonly configured: Microversion | undefined;
  private readonly agentVersion: string;
  private readonly log: Logger;

  constructor(http: IronicHttp, opts: { configuredVersion?: Microversion | undefined; agentVersion: string; log: Logger }) {
    this.http = http;
    this.configured = opts.configuredVersion;
    this.agentVersion = opts.agentVersion;
    this.log = opts.log;
  }

  /**
   * The server's default microversion: configured, else discovered with `GET /` and cached
   * on success. A failed discovery answers 1.31 for this call and is tried again next time.
   */
  async apiVersion(): Promise<Microversion> {
    if (this.configured) return this.configured;
    if (this.discovered) return this.discovered;
    try {
      const res = await this.http.call('GET', '/');
      const version = res.status === 200 ? parseVersion(defaultVersionOf(safeJson(res.text))) : undefined;
      if (version) {
        this.discovered = version;
        this.log.info({ version: formatVersion(version) }, 'discovered the Ironic API version');
        return version;
      }
      this.log.warn({ status: res.status }, 'Ironic API version discovery gave no version; using 1.31 for now');
    } catch (err) {
      this.log.warn({ err: String(err) }, 'Ironic API version discovery failed; using 1.31 for now');
    }
    return FALLBACK_VERSION;
  }

  async lookup(macs: readonly string[], nodeUuid?: string): Promise<LookupOutcome> {
    const version = lower(await this.apiVersion(), AGENT_TOKEN);
    const query = new URLSearchParams({ addresses: macs.join(',') });
    if (nodeUuid) query.set('node_uuid', nodeUuid);
    const res = await this.http.call('GET', `/v1/lookup?${query}`, {
      headers: { 'x-openstack-ironic-api-version': formatVersion(version) },
    });
    if (res.status === 409) return { kind: 'locked', detail: ironicErrorText(res.status, res.text) };
    if (res.status !== 200) return { kind: 'retry', detail: ironicErrorText(res.status, res.text) };
    const parsed = parseLookupBody(safeJson(res.text), this.log);
    if (!parsed) return { kind: 'retry', detail: 'lookup answer is not JSON with node.uuid and config' };
    return { kind: 'found', ...parsed };
  }

  /** Body keys in IPA's order, each only when the negotiated version knows it (spec §4.1). */
  async heartbeatPayload(body: HeartbeatBody): Promise<{ version: Microversion; payload: Record<string, unknown> }> {
    const version = lower(await this.apiVersion(), AGENT_VERIFY_CA);
    const payload: Record<string, unknown> = { callback_url: body.callbackUrl };
    if (atLeast(version, AGENT_TOKEN)) payload.agent_token = body.token ?? null;
    if (atLeast(version, AGENT_VERSION_FIELD)) payload.agent_version = this.agentVersion;
    if (atLeast(version, AGENT_VERIFY_CA) && body.verifyCa) payload.agent_verify_ca = body.verifyCa;
    return { version, payload };
  }

  /** Resolves on 202; throws HeartbeatConflictError, HeartbeatError or IronicConnectionError. */
  async heartbeat(nodeUuid: string, body: HeartbeatBody): Promise<void> {
    const { version, payload } = await this.heartbeatPayload(body);
    const res = await this.http.call('POST', `/v1/heartbeat/${encodeURIComponent(nodeUuid)}`, {
      headers: { 'x-openstack-ironic-api-version': formatVersion(version) },
      body: payload,
    });
    if (res.status === 202) return;
    const text = ironicErrorText(res.status, res.text);
    if (res.status === 409) throw new HeartbeatConflictError(res.status, text);
    throw new HeartbeatError(res.status, text);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `default_version.version` of Ironic's root document. */
function defaultVersionOf(root: unknown): unknown {
  if (typeof root !== 'object' || root === null) return undefined;
  const dv = (root as { default_version?: unknown }).default_version;
  return typeof dv === 'object' && dv !== null ? (dv as { version?: unknown }).version : undefined;
}
