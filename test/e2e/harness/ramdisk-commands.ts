import { request } from 'undici';
import type { RamdiskVm } from './qemu.ts';

export type RamdiskCommand = (name: string, params: unknown) => Promise<unknown>;

/**
 * The command API of a ramdisk booted standalone (no ipa-api-url: IPA's API without a token),
 * called with wait=true. A command that does not succeed throws with its error and the end
 * of the VM's console, where the agent's log says why.
 */
export function ramdiskCommands(api: string, vm: RamdiskVm, timeoutMs: number): RamdiskCommand {
  return async (name, params) => {
    const res = await request(`${api}/v1/commands/?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, params }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const body = (await res.body.json()) as { command_status: string; command_error: unknown; command_result: unknown };
    if (body.command_status !== 'SUCCEEDED') throw new Error(`${name}: ${JSON.stringify(body.command_error)}\n--- VM console ---\n${vm.tail(60)}`);
    return body.command_result;
  };
}
