import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Reply = { status: number; body?: unknown; raw?: string } | 'hang' | 'reset';

/**
 * A scripted stand-in for the Ironic API on 127.0.0.1, for the answers a real Ironic gives
 * only in situations a test cannot arrange (5xx, 409 locks, a dropped connection, garbage).
 * Every request is recorded. The real Ironic is exercised in test/e2e.
 */
export class FakeIronic {
  readonly requests: RecordedRequest[] = [];
  private server: Server | undefined;
  private handler: (req: RecordedRequest) => Reply;

  constructor(handler: (req: RecordedRequest) => Reply) {
    this.handler = handler;
  }

  setHandler(handler: (req: RecordedRequest) => Reply): void {
    this.handler = handler;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const recorded = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
    this.requests.push(recorded);
    const reply = this.handler(recorded);
    if (reply === 'hang') return;
    if (reply === 'reset') {
      req.socket.destroy();
      return;
    }
    const text = reply.raw ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    res.writeHead(reply.status, { 'content-type': 'application/json' });
    res.end(text);
  }
}

export const ROOT_1_82 = { status: 200, body: { name: 'OpenStack Ironic API', default_version: { id: 'v1', version: '1.82', min_version: '1.1' } } };

export function lookupAnswer(uuid: string, token: string, extra: Record<string, unknown> = {}) {
  return {
    status: 200,
    body: {
      node: { uuid, properties: {}, instance_info: {}, driver_internal_info: {}, links: [] },
      config: { heartbeat_timeout: 10, agent_token: token, agent_token_required: true, ...extra },
    },
  };
}
