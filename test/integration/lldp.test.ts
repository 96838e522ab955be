import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { collectLldp, frameFromTcpdump, parseLldpFrame } from '../../src/hardware/lldp.ts';
import { runCommand, type RunCommand } from '../../src/run.ts';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { memoryLogger } from '../helpers/logger.ts';
import { sh } from '../helpers/loop.ts';

const canRun = prerequisite('root (network namespaces)', isRoot) && prerequisite('tcpdump (apt-get install tcpdump)', hasTool('/usr/bin/tcpdump')) && prerequisite('python3', hasTool('/usr/bin/python3'));

const NS_AGENT = `ina-lldp-a-${process.pid}`;
const NS_SWITCH = `ina-lldp-s-${process.pid}`;

/** An LLDP frame as a switch sends it: chassis MAC, port "Ethernet1/7", TTL 120, system name. */
function lldpFrame(): Buffer {
  const tlv = (type: number, value: Buffer) => {
    const h = Buffer.alloc(2);
    h.writeUInt16BE((type << 9) | value.length);
    return Buffer.concat([h, value]);
  };
  return Buffer.concat([
    Buffer.from('0180c200000e', 'hex'), Buffer.from('02aabbccdd01', 'hex'), Buffer.from('88cc', 'hex'),
    tlv(1, Buffer.from('0402aabbccdd01', 'hex')),
    tlv(2, Buffer.concat([Buffer.from([5]), Buffer.from('Ethernet1/7')])),
    tlv(3, Buffer.from('0078', 'hex')),
    tlv(5, Buffer.from('switch-1')),
    tlv(0, Buffer.alloc(0)),
  ]);
}

describe('LLDP frames', () => {
  test('TLVs of a frame, as [type, hex] pairs, end TLV included (IPA)', () => {
    expect(parseLldpFrame(lldpFrame())).toEqual([
      [1, '0402aabbccdd01'],
      [2, `05${Buffer.from('Ethernet1/7').toString('hex')}`],
      [3, '0078'],
      [5, Buffer.from('switch-1').toString('hex')],
      [0, ''],
    ]);
    expect(parseLldpFrame(Buffer.alloc(20))).toEqual([]);
  });

  test('the frame from tcpdump -xx output', () => {
    const out = '12:00:00.000001 LLDP, length 46\n\t0x0000:  0180 c200 000e 02aa bbcc dd01 88cc 0207\n\t0x0010:  0402 aabb ccdd 01\n';
    expect(frameFromTcpdump(out)?.toString('hex')).toBe('0180c200000e02aabbccdd0188cc02070402aabbccdd01');
    expect(frameFromTcpdump('tcpdump: listening on eth0\n')).toBeUndefined();
  });
});

describe.skipIf(!canRun)('LLDP heard on a NIC (veth pair between two test namespaces)', () => {
  beforeAll(() => {
    sh('ip', ['netns', 'add', NS_AGENT]);
    sh('ip', ['netns', 'add', NS_SWITCH]);
    sh('ip', ['-n', NS_AGENT, 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'sw0', 'netns', NS_SWITCH]);
    sh('ip', ['-n', NS_AGENT, 'link', 'set', 'nic0', 'up']);
    sh('ip', ['-n', NS_SWITCH, 'link', 'set', 'sw0', 'up']);
    sh('ip', ['-n', NS_AGENT, 'link', 'add', 'quiet0', 'type', 'veth', 'peer', 'name', 'quiet1', 'netns', NS_SWITCH]);
    sh('ip', ['-n', NS_AGENT, 'link', 'set', 'quiet0', 'up']);
    sh('ip', ['-n', NS_SWITCH, 'link', 'set', 'quiet1', 'up']);
  });
  afterAll(() => {
    for (const ns of [NS_AGENT, NS_SWITCH]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  });

  test('the switch\'s TLVs on the NIC that hears it, an empty list on the one that does not', async () => {
    // The switch side announces every 200 ms for at most 20 s.
    const sender = spawn('ip', ['netns', 'exec', NS_SWITCH, 'python3', '-c', [
      'import socket, sys, time',
      's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
      's.bind(("sw0", 0))',
      `frame = bytes.fromhex("${lldpFrame().toString('hex')}")`,
      'for _ in range(100):',
      '    s.send(frame); time.sleep(0.2)',
    ].join('\n')], { stdio: 'ignore' });
    try {
      // tcpdump runs inside the agent's namespace; everything else is the real code path.
      const inNamespace: RunCommand = (file, args, opts) => runCommand('ip', ['netns', 'exec', NS_AGENT, file, ...args], opts);
      const heard = await collectLldp(inNamespace, memoryLogger().log, ['nic0', 'quiet0'], 3);
      expect(heard.nic0).toEqual(parseLldpFrame(lldpFrame()));
      expect(heard.quiet0).toEqual([]);
    } finally {
      sender.kill();
    }
  });

  test('without tcpdump: no LLDP data and a warning, not an error', async () => {
    const logger = memoryLogger();
    const missing: RunCommand = (file, args, opts) => runCommand(`/nonexistent/${file}`, args, opts);
    expect(await collectLldp(missing, logger.log, ['nic0'], 1)).toEqual({});
    expect(logger.lines().some((l) => l.msg === 'tcpdump is not installed: no LLDP data (ipa-collect-lldp)')).toBe(true);
  });
});
