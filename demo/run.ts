import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listInterfaces } from '../src/hardware/interfaces.ts';
import { runCommand } from '../src/run.ts';
import { AgentProcess, type LogLine } from '../test/helpers/agent-process.ts';
import { hashRange, makeDiskImage, partitionTableOf } from '../test/helpers/disk-images.ts';
import { ImageServer } from '../test/helpers/image-server.ts';
import { LoopDevice } from '../test/helpers/loop.ts';
import { Ironic } from '../test/e2e/harness/ironic.ts';

/**
 * The demo (`npm run demo`, as root): a real Ironic on 127.0.0.1 drives the agent, started as
 * its own process, through a node's life with Ironic's `direct` deploy interface:
 * manageable -> available -> active (a whole-disk image streamed from an HTTP server on
 * 127.0.0.1 onto a loop device the demo creates, verified with SHA-256) -> available. Power
 * actions are simulated, so this machine is never powered off. Human output on stderr.
 */
const MiB = 1 << 20;

const started = performance.now();
const say = (text: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}\n`);

function narrate(line: LogLine): void {
  const interesting: Record<string, (l: LogLine) => string> = {
    'lookup succeeded': (l) => `agent: looked itself up, node ${String(l.node)}`,
    'auto-TLS certificate generated': (l) => `agent: generated its TLS certificate for ${String(l.ip)}`,
    'agent API listening': (l) => `agent: serving the command API (${String(l.scheme)}) on port ${String(l.port)}`,
    'executing command': (l) => `agent: conductor called ${String(l.command)}`,
    'running deploy step write_image': () => 'agent: running the write_image deploy step',
    'simulated boot: forgetting the token and the command log, looking up again': () => 'agent: simulated reboot, looking up again',
    'image write progress': (l) => {
      const p = l.progress as { percent: number | null; rate_mb_per_s: number };
      return `agent: ${p.percent ?? '?'}% of the image written, ${p.rate_mb_per_s} MB/s`;
    },
  };
  const prefixed: [string, (l: LogLine) => string][] = [
    ['writing image', (l) => `agent: ${l.msg}`],
    ['Image ', (l) => `agent: ${l.msg}`],
    ['image ', (l) => `agent: ${l.msg}`],
  ];
  const text = interesting[line.msg]?.(line) ?? prefixed.find(([p]) => line.msg.startsWith(p))?.[1](line) ?? (line.level >= 50 ? `agent error: ${line.msg} ${String(line.err ?? '')}` : undefined);
  if (text) say(text);
}

const dir = await mkdtemp(join(tmpdir(), 'ina-demo-'));
const images = new ImageServer();
await images.start();
say('making a 256 MiB whole-disk image (GPT, one partition) and a 5 GiB loop device as the target disk');
const image = await makeDiskImage(dir, 'demo.img', { size: 256 * MiB, dataEvery: 2 });
const imageUrl = images.serve('/demo.img', { path: image.path });
const disk = await LoopDevice.create(5 * 1024 * MiB);
say(`image at ${imageUrl} (sha256 ${image.sha256.slice(0, 16)}...), target disk ${disk.path}`);
say('starting a real Ironic (Debian python3-ironic) on 127.0.0.1');
const ironic = await Ironic.start({ automatedClean: false });
let agent: AgentProcess | undefined;
try {
  say(`Ironic API at ${ironic.url}`);
  const macs = (await listInterfaces({ run: runCommand, withAddresses: false })).map((i) => i.mac_address);
  const uuid = await ironic.enroll({ macs, deployInterface: 'direct', name: 'demo-node' });
  say(`enrolled node ${uuid} (direct deploy, ports ${macs.join(', ')}), now manageable`);
  await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: {
    image_source: imageUrl, image_os_hash_algo: 'sha256', image_os_hash_value: image.sha256, image_disk_format: 'raw', root_gb: 4,
  } }]);

  agent = await AgentProcess.start({
    cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
    // The agent may write only the demo's loop device, whatever Ironic asks.
    flags: ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1', '--allow-device', disk.path],
  });
  const seen = new Set<LogLine>();
  const poll = setInterval(() => {
    for (const line of agent!.lines) if (!seen.has(line)) (seen.add(line), narrate(line));
  }, 50);
  await agent.waitForMessage('agent API listening');
  await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 30, 'first heartbeat');
  say('Ironic received the first heartbeat');

  for (const target of ['provide', 'active', 'deleted'] as const) {
    const t0 = performance.now();
    const node = await ironic.provision(uuid, target);
    say(`ironic: ${target} -> ${node?.provision_state} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (target === 'active') {
      if (node?.provision_state !== 'active') throw new Error(`deploy failed: ${String(node?.last_error)}`);
      // The backup GPT was moved to the end of the larger disk, which changes the first MiB; the rest is the image.
      const [onDisk, inImage] = await Promise.all([hashRange(disk.path, MiB, image.size - MiB), hashRange(image.path, MiB, image.size - MiB)]);
      if (onDisk !== inImage) throw new Error(`${disk.path} does not hold the image`);
      say(`${disk.path} holds the image byte for byte (partition table: ${partitionTableOf(disk.path) ?? 'none'})`);
    }
  }
  clearInterval(poll);
  say('done: the node went manageable -> available -> active -> available, driven only by Ironic');
} catch (err) {
  say(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  if (agent) process.stderr.write(`${agent.tail()}\n`);
  process.exitCode = 1;
} finally {
  await agent?.stop();
  await ironic.stop();
  await images.stop();
  await disk.destroy();
  await rm(dir, { recursive: true, force: true });
}
