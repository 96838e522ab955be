import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listInterfaces } from '../../src/hardware/interfaces.ts';
import { runCommand } from '../../src/run.ts';
import { AgentProcess } from '../helpers/agent-process.ts';
import { hashRange, makeDiskImage, pack, partitionTableOf, type TestImage } from '../helpers/disk-images.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { LoopDevice } from '../helpers/loop.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';

const canRun = prerequisite('Ironic (apt-get install python3-ironic ironic-common), root for loop devices, qemu-img', existsSync(IRONIC_BIN) && isRoot);

const FAST = ['--simulate-power', '--heartbeat-min-interval', '1', '--lookup-max-interval', '1'];
const MiB = 1 << 20;

/**
 * Ironic's `direct` deploy interface, unmodified: it hands the agent image_info through
 * standby.prepare_image and polls until the image is on the disk (spec §7.1, §9).
 */
describe.skipIf(!canRun)('an unmodified Ironic deploys whole-disk images with the direct interface', () => {
  let dir: string;
  let images: ImageServer;
  let ironic: Ironic;
  let disk: LoopDevice;
  let agent: AgentProcess;
  let uuid: string;
  let raw: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-e2e-direct-'));
    images = new ImageServer();
    await images.start();
    raw = await makeDiskImage(dir, 'disk.raw', { size: 48 * MiB, diskId: 0x0badcafe, dataEvery: 3 });
    disk = await LoopDevice.create(5 * 1024 * MiB);
    // UEFI: Ironic 21.4 skips set_boot_device(disk), which fake management refuses, for Lenovo nodes in UEFI mode (bug 2053064).
    ironic = await Ironic.start({ automatedClean: false });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    uuid = await ironic.enroll({ macs, deployInterface: 'direct' });
    agent = await AgentProcess.start({
      // A checksum mismatch retries the whole transfer (spec §9.4): 2 retries, 1 s apart, not 9 x 10 s.
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2 ipa-image-download-connection-retries=2 ipa-image-download-connection-retry-interval=1`,
      flags: [...FAST, '--allow-device', disk.path],
    });
    await ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 60, 'first heartbeat');
    await ironic.provision(uuid, 'provide');
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await images?.stop();
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function deploy(image: TestImage, name: string, diskFormat: string, checksum: { algo: 'sha256' | 'sha512'; value: string }) {
    const url = images.serve(`/${name}`, { path: image.path });
    await ironic.patch(uuid, [
      { op: 'add', path: '/instance_info', value: {
        image_source: url,
        image_os_hash_algo: checksum.algo,
        image_os_hash_value: checksum.value,
        image_disk_format: diskFormat,
        root_gb: 4,
      } },
    ]);
    return ironic.provision(uuid, 'active', { wait: null });
  }

  test('a raw image reaches active; the disk holds the image and its partition table', async () => {
    await deploy(raw, 'disk.raw', 'raw', { algo: 'sha256', value: raw.sha256 });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 180, 'active');
    expect(node.last_error).toBeNull();
    expect(node.provision_state).toBe('active');
    // Ironic 21.4's direct interface runs the agent's in-band write_image deploy step.
    expect(agent.lines.some((l) => l.msg === 'running deploy step write_image')).toBe(true);
    expect(await hashRange(disk.path, MiB, raw.size - MiB)).toBe(await hashRange(raw.path, MiB, raw.size - MiB));
    expect(partitionTableOf(disk.path)).toBe('gpt');
    await ironic.provision(uuid, 'deleted');
  });

  test('a qcow2 image verified with SHA-512 reaches active', async () => {
    const qcow = await pack(raw, 'qcow2', join(dir, 'disk.qcow2'));
    await deploy(qcow, 'disk.qcow2', 'qcow2', { algo: 'sha512', value: qcow.sha512 });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 180, 'active');
    expect(node.last_error).toBeNull();
    expect(await hashRange(disk.path, MiB, raw.size - MiB)).toBe(await hashRange(raw.path, MiB, raw.size - MiB));
    await ironic.provision(uuid, 'deleted');
  });

  test('a zstd image, with a root device hint naming the loop device, reaches active', async () => {
    const zst = await pack(raw, 'zstd', join(dir, 'disk.raw.zst'));
    await ironic.patch(uuid, [{ op: 'add', path: '/properties/root_device', value: { name: disk.path } }]);
    await deploy(zst, 'disk.raw.zst', 'raw', { algo: 'sha256', value: zst.sha256 });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 180, 'active');
    expect(node.last_error).toBeNull();
    expect(agent.lines.some((l) => l.msg.startsWith('writing image') && l.compression === 'zstd' && l.device === disk.path)).toBe(true);
    expect(await hashRange(disk.path, MiB, raw.size - MiB)).toBe(await hashRange(raw.path, MiB, raw.size - MiB));
    await ironic.provision(uuid, 'deleted');
    await ironic.patch(uuid, [{ op: 'remove', path: '/properties/root_device' }]);
  });

  test('a wrong checksum ends in deploy failed with the agent\'s message, and the disk cannot boot', async () => {
    await deploy(raw, 'bad.raw', 'raw', { algo: 'sha256', value: '0'.repeat(64) });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 180, 'deploy failed');
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/checksum/i);
    expect(partitionTableOf(disk.path)).toBeUndefined();
  });
});

/**
 * Without fast track Ironic powers the node off and on around the deploy and expects a new
 * lookup: the agent (simulated power) sees its token refused, looks up again, and deploys.
 */
describe.skipIf(!canRun)('direct deploy without fast track', () => {
  let dir: string;
  let images: ImageServer;
  let ironic: Ironic;
  let disk: LoopDevice;
  let agent: AgentProcess;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-e2e-direct-nft-'));
    images = new ImageServer();
    await images.start();
    disk = await LoopDevice.create(5 * 1024 * MiB);
    ironic = await Ironic.start({ automatedClean: false, fastTrack: false });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await images?.stop();
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a raw image with SHA-512 reaches active after the power cycle', async () => {
    const raw = await makeDiskImage(dir, 'disk.raw', { size: 32 * MiB, dataEvery: 2 });
    const macs = (await listInterfaces({ run: runCommand })).map((i) => i.mac_address);
    const uuid = await ironic.enroll({ macs, deployInterface: 'direct', fastTrack: false });
    agent = await AgentProcess.start({
      cmdline: `ipa-api-url=${ironic.url} ipa-lookup-interval=0.2`,
      flags: [...FAST, '--allow-device', disk.path],
    });
    await ironic.provision(uuid, 'provide');
    const url = images.serve('/disk.raw', { path: raw.path });
    await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: {
      image_source: url, image_os_hash_algo: 'sha512', image_os_hash_value: raw.sha512, image_disk_format: 'raw', root_gb: 4,
    } }]);
    await ironic.provision(uuid, 'active', { wait: null });
    const node = await ironic.waitFor(uuid, (n) => ['active', 'deploy failed'].includes(n.provision_state), 240, 'active');
    expect(node.last_error).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(await hashRange(disk.path, MiB, raw.size - MiB)).toBe(await hashRange(raw.path, MiB, raw.size - MiB));
  }, 300_000);
});
