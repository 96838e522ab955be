import { AgentError, errorMessage } from '../errors.ts';
import type { CommandDispatcher } from './dispatcher.ts';

/**
 * JSON-RPC 2.0 over the same dispatcher as the REST API: method = `<extension>.<command>`,
 * params = the command's params object, result = the same command result object REST returns.
 * Refusals map onto the standard codes; the IPA error travels in `error.data`.
 */
export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_METHOD_NOT_FOUND = -32601;
export const JSONRPC_INVALID_PARAMS = -32602;
export const JSONRPC_INTERNAL_ERROR = -32603;
/** Implementation-defined server error: the agent is busy with another command (HTTP 409). */
export const JSONRPC_AGENT_BUSY = -32000;

type Id = string | number | null;

interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

export type JsonRpcResponse =
  | { jsonrpc: '2.0'; id: Id; result: unknown }
  | { jsonrpc: '2.0'; id: Id; error: JsonRpcError };

function failure(id: Id, code: number, message: string, data?: unknown): JsonRpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** The JSON-RPC error for an AgentError refused by the dispatcher. */
function agentErrorToRpc(id: Id, err: AgentError): JsonRpcResponse {
  const data = { ...err.toJSON(), faultstring: err.message };
  if (err.type === 'AgentIsBusy') return failure(id, JSONRPC_AGENT_BUSY, err.message, data);
  if (err.type === 'InvalidCommandParamsError') return failure(id, JSONRPC_INVALID_PARAMS, err.message, data);
  if (err.type === 'RequestedObjectNotFoundError' || err.type === 'InvalidCommandError') {
    return failure(id, JSONRPC_METHOD_NOT_FOUND, err.message, data);
  }
  return failure(id, JSONRPC_INTERNAL_ERROR, err.message, data);
}

export interface JsonRpcOptions {
  /** `wait=true`: answer each call once its command finished. */
  wait: boolean;
}

/**
 * Handles a parsed request body (`undefined` = the body was not JSON). Returns the response
 * body, or `undefined` when nothing must be sent (only notifications).
 */
export async function handleJsonRpc(
  body: unknown,
  dispatcher: CommandDispatcher,
  opts: JsonRpcOptions,
): Promise<JsonRpcResponse | JsonRpcResponse[] | undefined> {
  if (body === undefined) return failure(null, JSONRPC_PARSE_ERROR, 'Parse error');
  if (Array.isArray(body)) {
    if (body.length === 0) return failure(null, JSONRPC_INVALID_REQUEST, 'Invalid Request: empty batch');
    const responses: JsonRpcResponse[] = [];
    // Sequential on purpose: commands run one at a time anyway, and order must be kept.
    for (const call of body) {
      const response = await handleOne(call, dispatcher, opts);
      if (response) responses.push(response);
    }
    return responses.length > 0 ? responses : undefined;
  }
  return handleOne(body, dispatcher, opts);
}

async function handleOne(call: unknown, dispatcher: CommandDispatcher, opts: JsonRpcOptions): Promise<JsonRpcResponse | undefined> {
  if (typeof call !== 'object' || call === null || Array.isArray(call)) {
    return failure(null, JSONRPC_INVALID_REQUEST, 'Invalid Request: not an object');
  }
  const req = call as Record<string, unknown>;
  const hasId = Object.hasOwn(req, 'id');
  const rawId = req.id;
  const idValid = rawId === null || typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId));
  const id: Id = hasId && idValid ? (rawId as Id) : null;
  if (req.jsonrpc !== '2.0' || typeof req.method !== 'string' || (hasId && !idValid)) {
    return failure(id, JSONRPC_INVALID_REQUEST, 'Invalid Request: needs "jsonrpc": "2.0", a string "method" and a string or number "id"');
  }
  const params = req.params ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    return hasId ? failure(id, JSONRPC_INVALID_PARAMS, 'Invalid params: params must be an object of named parameters') : undefined;
  }
  try {
    const record = await dispatcher.execute(req.method, params as Record<string, unknown>);
    if (opts.wait) await record.wait();
    return hasId ? { jsonrpc: '2.0', id, result: record.toJSON() } : undefined;
  } catch (err) {
    if (!hasId) return undefined;
    if (err instanceof AgentError) return agentErrorToRpc(id, err);
    return failure(id, JSONRPC_INTERNAL_ERROR, errorMessage(err));
  }
}
