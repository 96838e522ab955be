import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AgentError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CommandRecord } from './command-log.ts';
import type { CommandDispatcher } from './dispatcher.ts';
import { handleJsonRpc } from './jsonrpc.ts';
import { maskSecrets } from '../secrets.ts';

/** How a request's `agent_token` query parameter compares with the token the agent holds. */
export type TokenVerdict = 'valid' | 'absent' | 'invalid';

export interface ServerTls {
  certPem: string;
  keyPem: string;
  minVersion: '1.2' | '1.3';
  ciphers?: string | undefined;
}

export interface ApiServerOptions {
  host: string;
  port: number;
  tls?: ServerTls | undefined;
  dispatcher: CommandDispatcher;
  checkToken(token: string | undefined): TokenVerdict;
  status(): { started_at: number; version: string };
  log: Logger;
  /** Request bodies above this are refused with 413 (a config drive is the largest legitimate one). */
  maxBodyBytes?: number;
}

/** IPA's default TLS 1.2 ciphers: ECDHE with AES-GCM (spec §1.2). */
const DEFAULT_TLS12_CIPHERS = 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256';
const DEFAULT_MAX_BODY = 96 * 1024 * 1024;
const DOCS_URL = 'https://docs.openstack.org/ironic-python-agent/';
const MEDIA_TYPE = 'application/vnd.openstack.ironic-python-agent.v1+json';

/** werkzeug's texts, which IPA's API returns and operators' tooling greps for (spec §6.4). */
const HTTP_TEXT = {
  400: '400 Bad Request',
  401: '401 Unauthorized: Token invalid.',
  404: '404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.',
  405: '405 Method Not Allowed: The method is not allowed for the requested URL.',
  413: '413 Request Entity Too Large: The data value transmitted exceeds the capacity limit.',
} as const;

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, faultstring: string) {
    super(faultstring);
    this.status = status;
  }
}

/**
 * The agent's HTTP(S) API (spec §6): IPA's REST routes, with and without the /v1 prefix and
 * trailing slash, plus JSON-RPC 2.0 at POST /v1/jsonrpc. Every answer is JSON; every error
 * carries `faultstring`, which Ironic requires.
 */
export class AgentApiServer {
  private readonly opts: ApiServerOptions;
  private server: Server | undefined;

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
  }

  get scheme(): 'http' | 'https' {
    return this.opts.tls ? 'https' : 'http';
  }

  async start(): Promise<AddressInfo> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.opts.tls;
    const server = tls
      ? createHttpsServer(
          {
            cert: tls.certPem,
            key: tls.keyPem,
            minVersion: tls.minVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
            ciphers: tls.ciphers ?? DEFAULT_TLS12_CIPHERS,
          },
          handler,
        )
      : createHttpServer(handler);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    this.opts.log.info({ host: address.address, port: address.port, scheme: this.scheme }, 'agent API listening');
    return address;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.opts.log.info('agent API stopped');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      const root = `${this.scheme}://${req.headers.host ?? 'localhost'}`;
      const route = url.pathname.replace(/^\/v1(?=\/|$)/, '').replace(/\/+$/, '');
      const versioned = /^\/v1(\/|$)/.test(url.pathname);
      const method = req.method ?? 'GET';

      if (url.pathname === '/' || url.pathname === '') return this.only(req, res, 'GET', () => rootDocument(root));
      if (versioned && route === '') return this.only(req, res, 'GET', () => v1Document(root));
      if (route === '/status') return this.only(req, res, 'GET', () => this.opts.status());
      if (route === '/commands') {
        if (method === 'GET') return this.listCommands(url, res);
        if (method === 'POST') return await this.runCommand(req, url, res);
        throw new HttpError(405, HTTP_TEXT[405]);
      }
      const one = /^\/commands\/([^/]+)$/.exec(route);
      if (one) {
        if (method !== 'GET') throw new HttpError(405, HTTP_TEXT[405]);
        return await this.getCommand(decodeURIComponent(one[1]!), url, res);
      }
      if (versioned && route === '/jsonrpc') {
        if (method !== 'POST') throw new HttpError(405, HTTP_TEXT[405]);
        return await this.jsonRpc(req, url, res);
      }
      throw new HttpError(404, HTTP_TEXT[404]);
    } catch (err) {
      this.fail(res, err);
    }
  }

  private only(req: IncomingMessage, res: ServerResponse, method: string, body: () => unknown): void {
    if (req.method !== method) throw new HttpError(405, HTTP_TEXT[405]);
    send(res, 200, body());
  }

  /** `absent` is allowed for reads: Ironic 21.4 polls GET /v1/commands/ without the token. */
  private authorize(url: URL, need: 'read' | 'write'): TokenVerdict {
    const verdict = this.opts.checkToken(url.searchParams.get('agent_token') ?? undefined);
    if (verdict === 'invalid' || (verdict === 'absent' && need === 'write')) throw new HttpError(401, HTTP_TEXT[401]);
    return verdict;
  }

  private listCommands(url: URL, res: ServerResponse): void {
    const verdict = this.authorize(url, 'read');
    const commands = this.opts.dispatcher.log.list().map((r) => serialize(r, verdict));
    // How the conductor follows a long step (spec §8.7): one line per poll, with what it saw last.
    const last = this.opts.dispatcher.log.last();
    this.opts.log.debug({ count: commands.length, last: last?.name, status: last?.status }, 'command list requested');
    send(res, 200, { commands });
  }

  private async getCommand(id: string, url: URL, res: ServerResponse): Promise<void> {
    const verdict = this.authorize(url, 'read');
    const record = this.opts.dispatcher.log.get(id);
    if (!record) throw new AgentError('RequestedObjectNotFoundError', 404, 'Not found', `Command Result with id ${id} not found.`);
    if (wantsWait(url)) await record.wait();
    send(res, 200, serialize(record, verdict));
  }

  private async runCommand(req: IncomingMessage, url: URL, res: ServerResponse): Promise<void> {
    this.authorize(url, 'write');
    const body = await this.readJson(req);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HttpError(400, `${HTTP_TEXT[400]}: Missing or invalid name or params`);
    }
    const { name, params } = body as Record<string, unknown>;
    if (typeof name !== 'string' || typeof params !== 'object' || params === null || Array.isArray(params)) {
      throw new HttpError(400, `${HTTP_TEXT[400]}: Missing or invalid name or params`);
    }
    const record = await this.opts.dispatcher.execute(name, params as Record<string, unknown>);
    if (wantsWait(url)) await record.wait();
    send(res, 200, record.toJSON());
  }

  private async jsonRpc(req: IncomingMessage, url: URL, res: ServerResponse): Promise<void> {
    this.authorize(url, 'write');
    let body: unknown;
    try {
      body = await this.readJson(req);
    } catch (err) {
      if (err instanceof HttpError && err.status === 413) throw err;
      body = undefined;
    }
    const response = await handleJsonRpc(body, this.opts.dispatcher, { wait: wantsWait(url) });
    if (response === undefined) {
      res.writeHead(204).end();
      return;
    }
    send(res, 200, response);
  }

  /** Reads the whole body up to the cap and parses it as JSON, whatever the content type (IPA: get_json(force=True)). */
  private async readJson(req: IncomingMessage): Promise<unknown> {
    const max = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) throw new HttpError(413, HTTP_TEXT[413]);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new HttpError(413, HTTP_TEXT[413]);
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, `${HTTP_TEXT[400]}: Failed to decode JSON object: ${errorMessage(err)}`);
    }
  }

  private fail(res: ServerResponse, err: unknown): void {
    let status: number;
    let faultstring: string;
    if (err instanceof HttpError) {
      status = err.status;
      faultstring = err.message;
    } else if (err instanceof AgentError) {
      status = err.code;
      faultstring = err.message;
    } else {
      status = 500;
      faultstring = errorMessage(err);
      this.opts.log.error({ err: faultstring }, 'internal error in the agent API');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A refused oversized body is not read to its end; closing avoids reading it in vain.
    if (status === 413) res.setHeader('connection', 'close');
    send(res, status, { faultcode: status >= 500 ? 'Server' : 'Client', faultstring });
  }
}

function wantsWait(url: URL): boolean {
  return url.searchParams.get('wait')?.toLowerCase() === 'true';
}

/** Reads without the token see results with secret-looking values masked. */
function serialize(record: CommandRecord, verdict: TokenVerdict): unknown {
  const json = record.toJSON();
  return verdict === 'absent' ? maskSecrets(json) : json;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function link(href: string, rel: string, extra: Record<string, string> = {}) {
  return { href, rel, ...extra };
}

function version(root: string) {
  return {
    id: 'v1',
    links: [link(`${root}/v1/`, 'self'), link(DOCS_URL, 'describedby', { type: 'text/html' })],
  };
}

function rootDocument(root: string) {
  return {
    name: 'OpenStack Ironic Python Agent API',
    description: 'Ironic Python Agent is a provisioning agent for OpenStack Ironic',
    versions: [version(root)],
    default_version: version(root),
  };
}

function v1Document(root: string) {
  return {
    ...version(root),
    commands: [link(`${root}/v1/commands`, 'self'), link(`${root}/commands`, 'bookmark')],
    status: [link(`${root}/v1/status`, 'self'), link(`${root}/status`, 'bookmark')],
    media_types: [{ base: 'application/json', type: MEDIA_TYPE }],
  };
}

