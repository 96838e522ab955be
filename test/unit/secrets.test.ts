import { describe, expect, test } from 'vitest';
import { redact } from '../../src/log.ts';
import { maskSecrets } from '../../src/secrets.ts';

describe('secrets never reach logs or unauthenticated readers', () => {
  const params = {
    step: { step: 'write_image', args: { image_info: { id: 'x', urls: ['http://i'], image_server_password: 'hunter2', image_request_authorization: 'Basic abc' }, configdrive: 'H4sI...' } },
    node: { driver_internal_info: { agent_secret_token: '******' }, driver_info: { ipmi_password: 'p' } },
    agent_token: 'tok',
    oci_pull_secret: 'c2VjcmV0',
    heartbeat_timeout: 300,
  };

  test('secret-looking keys are masked at any depth, other values kept', () => {
    const masked = JSON.stringify(maskSecrets(params));
    for (const secret of ['hunter2', 'Basic abc', 'H4sI', 'tok"', 'c2VjcmV0', '"p"']) expect(masked).not.toContain(secret);
    expect(masked).toContain('"heartbeat_timeout":300');
    expect(masked).toContain('"urls":["http://i"]');
  });

  test('log redaction also cuts long strings', () => {
    const out = redact({ blob: 'a'.repeat(2000) }) as { blob: string };
    expect(out.blob.length).toBeLessThan(600);
    expect(out.blob).toContain('[2000 chars]');
  });
});
