import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { BuildResult } from '../../image-build/pipeline.ts';
import { debianLoaders, espFiles, espRead } from '../helpers/bootloader-disks.ts';
import { hashRange, makeDiskImage, makeFilesystemImage, type TestImage } from '../helpers/disk-images.ts';
import { prerequisite } from '../helpers/env.ts';
import { ImageServer } from '../helpers/image-server.ts';
import { freePort } from '../helpers/ports.ts';
import { IRONIC_BIN, Ironic } from './harness/ironic.ts';
import { OVMF_VARS, RamdiskVm } from './harness/qemu.ts';
import { buildTestRamdisk, canBuildRamdisk } from './harness/ramdisk-image.ts';
import { sfdiskTable } from '../helpers/disk-inspect.ts';

const haveQemu = prerequisite('QEMU (apt-get install qemu-system-x86)', RamdiskVm.available());
const haveBuild = prerequisite('image-build tools (apt, dpkg, kmod, zstd)', canBuildRamdisk());
const haveIronic = prerequisite('Ironic (apt-get install python3-ironic ironic-common)', existsSync(IRONIC_BIN));

/** The guest reaches Ironic at this address; QEMU relays it to Ironic's 127.0.0.1 port. */
const GUEST_IRONIC = { guestAddress: '10.0.2.100', guestPort: 6385 };
const AGENT_PORT = 9999;

/**
 * One Ironic deploy interface driven end to end against the booted ramdisk. `deploy` moves
 * the node from available to active (the VM powers itself off on the way, for real);
 * `verify` then looks at the VM's disk from the host.
 */
interface DeployCase {
  name: string;
  deployInterface: 'custom-agent' | 'direct';
  /** Boot the VM through OVMF with an EFI variable store (a copy of OVMF_VARS) in `vars`. */
  uefi?: boolean;
  properties?: Record<string, unknown>;
  deploy(ironic: Ironic, uuid: string): Promise<void>;
  verify?(disk: string, vars: string): Promise<void>;
}

const CASES: DeployCase[] = [
  {
    name: 'custom-agent',
    deployInterface: 'custom-agent',
    // The conductor asks for the agent's deploy steps, then powers the VM off through the agent.
    deploy: async (ironic, uuid) => {
      const active = await ironic.provision(uuid, 'active', { timeoutSeconds: 240 });
      expect(active?.provision_state).toBe('active');
    },
  },
  {
    name: 'direct',
    deployInterface: 'direct',
    // Ironic hands the agent the image URL; the guest fetches it from the host's image server
    // through QEMU's guestfwd, streams it onto the virtio disk, verified, then powers off.
    // image_download_source=local: the conductor fetches the image from the host's 127.0.0.1
    // (it checks http URLs itself, so a guest-only address would not do) and publishes it
    // under [deploy]http_url, which the guest reaches through QEMU's guestfwd.
    deploy: async (ironic, uuid) => {
      const url = images.serve('/disk.img', { path: diskImage.path });
      await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: {
        image_source: url, image_download_source: 'local',
        image_os_hash_algo: 'sha256', image_os_hash_value: diskImage.sha256, image_disk_format: 'raw', root_gb: 4,
      } }]);
      const active = await ironic.provision(uuid, 'active', { timeoutSeconds: 240 });
      expect(active?.last_error ?? null).toBeNull();
      expect(active?.provision_state).toBe('active');
    },
    verify: async (disk) => {
      // The backup GPT moved to the end of the larger disk (first MiB changed); the rest is the image.
      expect(await hashRange(disk, MiB, diskImage.size - MiB)).toBe(await hashRange(diskImage.path, MiB, diskImage.size - MiB));
    },
  },
  {
    name: 'partition-uefi',
    deployInterface: 'direct',
    // The one place the real efibootmgr runs: the guest booted through OVMF has EFI variables.
    // A partition image's fresh ESP gets the image's /boot/efi/EFI, and its BOOTX64.CSV
    // becomes an NVRAM boot entry that QEMU keeps in the variable store file.
    uefi: true,
    properties: { capabilities: 'boot_mode:uefi' },
    deploy: async (ironic, uuid) => {
      const url = images.serve('/root.ext4', { path: rootImage.path });
      await ironic.patch(uuid, [{ op: 'add', path: '/instance_info', value: {
        image_source: url, image_download_source: 'local', image_type: 'partition', root_gb: 1,
        image_os_hash_algo: 'sha256', image_os_hash_value: rootImage.sha256, image_disk_format: 'raw',
      } }]);
      const active = await ironic.provision(uuid, 'active', { timeoutSeconds: 240 });
      expect(active?.last_error ?? null).toBeNull();
      expect(active?.provision_state).toBe('active');
    },
    verify: async (disk, vars) => {
      const table = sfdiskTable(disk);
      expect(table.label).toBe('gpt');
      expect(table.partitions[0]!.type).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
      const esp = `${disk}@@${table.partitions[0]!.start * 512}`;
      expect(espFiles(esp).sort()).toEqual(Object.keys(ROOT_EFI).map((f) => f.slice('boot/efi/'.length)).sort());
      expect(espRead(esp, 'EFI/debian/shimx64.efi').equals(ROOT_EFI['boot/efi/EFI/debian/shimx64.efi']!)).toBe(true);
      // An EFI_LOAD_OPTION holds its description and file path in UTF-16LE.
      const store = await readFile(vars);
      expect(store.includes(Buffer.from('debian\0', 'utf16le'))).toBe(true);
      expect(store.includes(Buffer.from('\\EFI\\debian\\shimx64.efi', 'utf16le'))).toBe(true);
    },
  },
];

/** What the partition image brings for its ESP: Debian's shim layout, CSV included. */
const ROOT_EFI: Record<string, Buffer> = Object.fromEntries(Object.entries(debianLoaders()).map(([f, c]) => [`boot/efi/${f}`, c]));

const MiB = 1 << 20;
/** Where the guest finds the conductor's HTTP root (a QEMU guestfwd to `httpRoot`'s server). */
const GUEST_IMAGES = { guestAddress: '10.0.2.101', guestPort: 8080 };
let images: ImageServer;
let httpRoot: { dir: string; port: number; proxyUrl: string; stop: () => Promise<void> };
let diskImage: TestImage;
let rootImage: TestImage;

/**
 * A read-only static file server for the conductor's [deploy]http_root on 127.0.0.1, and a
 * forward proxy on 127.0.0.1 that sends requests for the guest-side address to it.
 */
async function serveDirectory(root: string): Promise<{ dir: string; port: number; proxyUrl: string; stop: () => Promise<void> }> {
  await mkdir(root, { recursive: true });
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = normalize(join(root, decodeURIComponent(path)));
    if (!file.startsWith(`${root}/`)) return void res.writeHead(403).end();
    stat(file).then(
      (st) => {
        res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') return void res.end();
        createReadStream(file).pipe(res);
      },
      () => void res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const guestSide = `${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}`;
  const proxy = createServer((req, res) => {
    const target = URL.canParse(req.url ?? '') ? new URL(req.url!) : undefined;
    if (!target || target.host !== guestSide) return void res.writeHead(502).end('only the guest-side image address is proxied');
    const up = httpRequest({ host: '127.0.0.1', port, path: target.pathname, method: req.method }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    up.end();
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const close = (s: ReturnType<typeof createServer>) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())));
  return {
    dir: root,
    port,
    proxyUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    stop: async () => {
      await close(server);
      await close(proxy);
    },
  };
}

describe.skipIf(!haveQemu || !haveBuild || !haveIronic)('the deploy ramdisk boots under QEMU and Ironic drives it', () => {
  let dir: string;
  let image: BuildResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ina-ramdisk-'));
    image = await buildTestRamdisk(join(dir, 'image'));
    images = new ImageServer();
    await images.start();
    httpRoot = await serveDirectory(join(dir, 'httproot'));
    diskImage = await makeDiskImage(dir, 'disk.img', { size: 64 * MiB, diskId: 0x5eed1234, dataEvery: 2 });
    rootImage = await makeFilesystemImage(dir, 'root.ext4', {
      sizeMb: 32, uuid: '3f0c5a9e-2b7d-4e61-9a18-6c4d2e8f1b07', files: { 'etc/fstab': 'LABEL=img-root / ext4 defaults 0 1\n', ...ROOT_EFI },
    });
  }, 900_000);

  afterAll(async () => {
    await images?.stop();
    await httpRoot?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    describe(`${c.name} deploy`, () => {
      let ironic: Ironic;
      let vm: RamdiskVm;
      let disk: string;

      beforeAll(async () => {
        ironic = await Ironic.start({
          automatedClean: false,
          imageServerUrl: `http://${GUEST_IMAGES.guestAddress}:${GUEST_IMAGES.guestPort}`,
          imageServerRoot: httpRoot.dir,
          // The conductor checks [deploy]http_url with a HEAD request of its own: it reaches the
          // guest-side address through a proxy that maps it to the same server on 127.0.0.1.
          env: { HTTP_PROXY: httpRoot.proxyUrl, http_proxy: httpRoot.proxyUrl, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
        });
      }, 120_000);

      afterAll(async () => {
        await vm?.stop();
        await ironic?.stop();
      });

      test('boot, lookup, heartbeat, deploy to active with a real power-off', async () => {
        const mac = '52:54:00:12:34:56';
        const uuid = await ironic.enroll({ macs: [mac], deployInterface: c.deployInterface, properties: c.properties });
        const agentPort = await freePort();
        disk = join(dir, `${c.name}-disk.img`);
        await writeFile(disk, '');
        // IPA's smallest root device is 4 GiB; the file stays sparse.
        await truncate(disk, 5 * 1024 ** 3);
        const vars = join(dir, `${c.name}-vars.fd`);
        if (c.uefi) await copyFile(OVMF_VARS, vars);
        vm = RamdiskVm.start({
          kernel: image.kernel.path,
          initramfs: image.initramfs.path,
          disks: [disk],
          uefi: c.uefi ? { vars } : undefined,
          mac,
          hostForwards: [{ hostPort: agentPort, guestPort: AGENT_PORT }],
          guestForwards: [
            { ...GUEST_IRONIC, hostPort: Number(new URL(ironic.url).port) },
            { ...GUEST_IMAGES, hostPort: httpRoot.port },
          ],
          append: [
            `ipa-api-url=http://${GUEST_IRONIC.guestAddress}:${GUEST_IRONIC.guestPort}`,
            // Ironic reaches the agent through QEMU's hostfwd on the host's loopback.
            `ipa-advertise-host=127.0.0.1 ipa-advertise-port=${agentPort}`,
            `BOOTIF=01-${mac.replace(/:/g, '-')}`,
            'ipa-lookup-interval=1 ina-lookup-max-interval=5',
          ].join(' '),
        });

        const withConsole = async <T>(what: Promise<T>): Promise<T> => {
          try {
            return await what;
          } catch (err) {
            throw new Error(`${(err as Error).message}\n--- VM console ---\n${vm.tail(60)}`);
          }
        };
        const looked = await withConsole(
          ironic.waitFor(uuid, (n) => typeof n.driver_internal_info.agent_url === 'string', 240, 'first heartbeat from the VM'),
        );
        const firstHeartbeat = vm.seconds();
        process.stderr.write(`ramdisk ${c.name}: QEMU start to first heartbeat in Ironic: ${firstHeartbeat.toFixed(1)} s\n`);
        expect(looked.driver_internal_info.agent_url).toBe(`https://127.0.0.1:${agentPort}`);
        expect(vm.count('ironic-node-agent ramdisk:')).toBe(1);

        await withConsole(ironic.provision(uuid, 'provide'));
        await withConsole(c.deploy(ironic, uuid));
        // The agent powered the VM off for real (it runs from an initramfs): QEMU exits.
        expect(await withConsole(vm.waitForExit(120))).toBe(0);
        await vm.waitForLine('ironic-node-agent ramdisk: going down', 1);
        if (c.verify) await c.verify(disk, vars);
      });
    });
  }
});
