import type { Logger } from '../log.ts';
import { ToolError, type RunCommand } from '../run.ts';

/** One LLDP TLV as IPA serialises it: `[type, hex value]` (spec §10.2). */
export type LldpTlv = [number, string];

const ETHERNET_HEADER = 14;
const LLDP_ETHERTYPE = 0x88cc;

/**
 * The TLVs of one LLDP frame (ethernet header included): type is the top 7 bits of the
 * 16-bit header, length the low 9 bits (IEEE 802.1AB), values as lower-case hex.
 */
export function parseLldpFrame(frame: Buffer): LldpTlv[] {
  if (frame.length < ETHERNET_HEADER || frame.readUInt16BE(12) !== LLDP_ETHERTYPE) return [];
  let buf = frame.subarray(ETHERNET_HEADER);
  const tlvs: LldpTlv[] = [];
  while (buf.length >= 2) {
    const header = buf.readUInt16BE(0);
    const length = header & 0x01ff;
    tlvs.push([header >> 9, buf.subarray(2, 2 + length).toString('hex')]);
    buf = buf.subarray(2 + length);
  }
  return tlvs;
}

/**
 * The first frame of `tcpdump -xx` output: its hex dump lines (`\t0x0000:  0180 c200 ...`)
 * joined back into bytes. tcpdump prints text, which keeps this off binary pipes.
 */
export function frameFromTcpdump(text: string): Buffer | undefined {
  const hex: string[] = [];
  let inFrame = false;
  for (const line of text.split('\n')) {
    const m = /^\s+0x[0-9a-f]{4}:\s+((?:[0-9a-f]{2,4}\s?)+)/i.exec(line);
    if (m) {
      inFrame = true;
      hex.push(m[1]!.replace(/\s+/g, ''));
    } else if (inFrame) {
      break;
    }
  }
  return hex.length > 0 ? Buffer.from(hex.join(''), 'hex') : undefined;
}

/**
 * Listens on each interface for one LLDP frame, all at once, for at most `timeoutSeconds`
 * (ipa-lldp-timeout): `tcpdump -c 1 -xx` with a filter on the LLDP ethertype. Node has no
 * raw sockets, which IPA uses; tcpdump opens the interface promiscuous as IPA does. An
 * interface that hears nothing gets an empty list; a missing tcpdump gives none at all.
 */
export async function collectLldp(run: RunCommand, log: Logger, interfaces: readonly string[], timeoutSeconds: number): Promise<Record<string, LldpTlv[]>> {
  const result: Record<string, LldpTlv[]> = {};
  await Promise.all(
    interfaces.map(async (name) => {
      try {
        const out = await run('tcpdump', ['-i', name, '-c', '1', '-xx', '-nn', '-l', 'ether', 'proto', `0x${LLDP_ETHERTYPE.toString(16)}`], { timeoutSeconds });
        const frame = frameFromTcpdump(out);
        result[name] = frame ? parseLldpFrame(frame) : [];
      } catch (err) {
        if (err instanceof ToolError && err.missing) {
          log.warn('tcpdump is not installed: no LLDP data (ipa-collect-lldp)');
          return;
        }
        if (!(err instanceof ToolError && /timed out/.test(err.message))) log.warn({ iface: name, err: String(err) }, 'LLDP capture failed');
        result[name] = [];
      }
    }),
  );
  return result;
}
