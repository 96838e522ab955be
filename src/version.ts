import pkg from '../package.json' with { type: 'json' };

/** Sent to Ironic as agent_version and shown by GET /v1/status. */
export const AGENT_VERSION: string = pkg.version;
