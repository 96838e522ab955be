import { invalidCommandParams } from '../errors.ts';

const KEY_TYPES = new Set([
  'ssh-rsa', 'ssh-dss', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-rsa-cert-v01@openssh.com', 'ssh-ed25519-cert-v01@openssh.com', 'ecdsa-sha2-nistp256-cert-v01@openssh.com',
]);

/** Whether `b64` is a key blob of `type`: the blob starts with its own type name (RFC 4253 §6.6). */
function blobMatches(type: string, b64: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return false;
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 4) return false;
  const n = blob.readUInt32BE(0);
  return n === Buffer.byteLength(type) && blob.subarray(4, 4 + n).toString('latin1') === type;
}

/**
 * `instance_info.bootc_authorized_keys`, checked line by line as sshd would read it, so a
 * pasted key with a broken line fails the deploy instead of leaving a node nobody can log
 * into. Returns the text bootc gets (one key per line, blank lines and comments dropped).
 */
export function validateAuthorizedKeys(text: string): string {
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const words = line.split(/\s+/);
    // Options (from="...",no-pty) may come first: the key type is the first known word.
    const at = words.findIndex((w) => KEY_TYPES.has(w));
    const type = at >= 0 ? words[at] : undefined;
    const blob = at >= 0 ? words[at + 1] : undefined;
    if (type === undefined || blob === undefined || !blobMatches(type, blob)) {
      const shown = line.length > 40 ? `${line.slice(0, 40)}...` : line;
      throw invalidCommandParams(`instance_info.bootc_authorized_keys line ${i + 1} is not an SSH public key ("<type> <base64 key> [comment]"): ${JSON.stringify(shown)}`);
    }
    keys.push(line);
  });
  if (keys.length === 0) throw invalidCommandParams('instance_info.bootc_authorized_keys holds no SSH public key');
  return `${keys.join('\n')}\n`;
}
