import { request } from 'undici';

/** A command record as GET /v1/commands/<id> shows it (spec §6.3). */
export interface CommandStatus {
  id: string;
  command_status: string;
  command_result: Record<string, unknown> | null;
  command_error: { type: string; details: string } | null;
}

/** Calls an agent's command API with its token, as the conductor does (REST, spec §6). */
export function agentCommands(baseUrl: string, token: string) {
  async function post(name: string, params: unknown, wait = false): Promise<{ status: number; body: CommandStatus & { faultstring?: string } }> {
    const res = await request(`${baseUrl}/v1/commands/?agent_token=${token}${wait ? '&wait=true' : ''}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, params }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as CommandStatus & { faultstring?: string } };
  }

  /** Polls the command until it is no longer RUNNING. */
  async function finished(id: string): Promise<CommandStatus> {
    for (;;) {
      const res = await request(`${baseUrl}/v1/commands/${id}?agent_token=${token}`);
      const s = (await res.body.json()) as CommandStatus;
      if (s.command_status !== 'RUNNING') return s;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return { post, finished };
}

/** Whether the agent at `baseUrl` serves its API (GET /v1/status answers 200). */
export async function agentApiAnswers(baseUrl: string): Promise<boolean> {
  try {
    const res = await request(`${baseUrl}/v1/status`, { headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.text();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}
