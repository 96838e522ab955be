import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installArgv, type InstallPlan } from '../../src/bootc/install.ts';
import { BOOTC_TOOLS, BootcSandbox } from '../helpers/bootc-registry.ts';
import { partitionTable, testKeys } from '../helpers/bootc-layout.ts';
import { hasTool, isRoot, prerequisite } from '../helpers/env.ts';
import { LoopDevice } from '../helpers/loop.ts';

const TMPFS = 0x01021994;
const canRun = prerequisite('root, podman, docker-registry, skopeo, htpasswd, openssl, busybox-static, cryptsetup', isRoot && BOOTC_TOOLS.every(hasTool));

/**
 * The bootc double (test/fixtures/bootc/fake-bootc) is only worth the tests built on it if
 * it refuses what the real `bootc install to-disk` refuses (spec/bootc.md §4.2, §7 table):
 * these run it through podman exactly as the agent does, then break one thing at a time.
 */
describe.skipIf(!canRun)('the bootc double refuses what bootc refuses', () => {
  let sb: BootcSandbox;
  let disk: LoopDevice;
  let image: string;
  let noBootc: string;
  let keysDir: string;
  let plan: InstallPlan;

  beforeAll(async () => {
    sb = await BootcSandbox.create();
    image = sb.publish('fake-bootc', { withBootc: true });
    noBootc = sb.publish('no-bootc', { withBootc: false });
    sb.podman(['pull', '-q', '--authfile', sb.adminAuth, image]);
    sb.podman(['pull', '-q', '--authfile', sb.adminAuth, noBootc]);
    disk = await LoopDevice.create(2 * 2 ** 30);
    keysDir = mkdtempSync(join(sb.dir, 'keys-'));
    writeFileSync(join(keysDir, 'authorized_keys'), testKeys());
    plan = { image, device: disk.path, graphRoot: join(sb.dir, 'graph'), rootMiB: 1280, tpm2Luks: false, selinux: false, keysDir };
  }, 120_000);

  afterAll(async () => {
    await disk?.destroy();
    await sb?.destroy();
  });

  function podman(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('podman', args, { env: { ...process.env, ...sb.env }, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  /** The agent's argv with the bootc arguments replaced (everything after `bootc`). */
  function withBootcArgs(args: string[], base = installArgv(plan)): string[] {
    return [...base.slice(0, base.indexOf('bootc') + 1), ...args];
  }

  test('the agent\'s own argv installs', () => {
    const r = podman(installArgv(plan));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Installation complete!');
    expect(partitionTable(disk.path).map((p) => p.name)).toEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'root']);
  });

  const usage: [string, string[], RegExp][] = [
    ['an unknown flag', ['install', 'to-disk', '--wipe', '--frobnicate', 'DEV'], /^error: unexpected argument '--frobnicate' found\n\nUsage: bootc install to-disk \[OPTIONS\] <DEVICE>/],
    ['no device', ['install', 'to-disk', '--wipe'], /the following required arguments were not provided:\n {2}<DEVICE>/],
    ['a block setup bootc does not know', ['install', 'to-disk', '--wipe', '--block-setup=luks', 'DEV'], /invalid value 'luks' for '--block-setup <BLOCK_SETUP>'\n {2}\[possible values: direct, tpm2-luks\]/],
    ['a repeated flag', ['install', 'to-disk', '--wipe', '--wipe', 'DEV'], /the argument '--wipe' cannot be used multiple times/],
    ['a value-less option', ['install', 'to-disk', 'DEV', '--root-ssh-authorized-keys'], /a value is required for '--root-ssh-authorized-keys <ROOT_SSH_AUTHORIZED_KEYS>'/],
    ['an unknown subcommand', ['install', 'to-filesystem', 'DEV'], /unrecognized subcommand/],
  ];
  for (const [what, args, message] of usage) {
    test(`${what}: exit 2 with clap's message`, () => {
      const r = podman(withBootcArgs(args.map((a) => (a === 'DEV' ? disk.path : a))));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  test('without --wipe an existing partition table is refused', () => {
    const r = podman(withBootcArgs(['install', 'to-disk', '--skip-fetch-check', disk.path]));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error: Installing to disk: Creating rootfs: Detected existing partitions on ${disk.path}; use e.g. \`wipefs\` or --wipe if you intend to overwrite`);
  });

  test('a keys file that does not exist inside the container is refused', () => {
    const r = podman(withBootcArgs(['install', 'to-disk', '--wipe', '--root-ssh-authorized-keys=/nonexistent/keys', disk.path]));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Reading /nonexistent/keys: No such file or directory (os error 2)');
  });

  test('IPA\'s keys file in the host\'s /tmp vanishes under bootc\'s /tmp tmpfs unless /tmp is a tmpfs', () => {
    const tmp = mkdtempSync('/tmp/ina-ipa-keys-');
    try {
      writeFileSync(join(tmp, 'keys'), testKeys());
      const base = installArgv({ ...plan, keysDir: undefined });
      const argv = withBootcArgs(['install', 'to-disk', '--wipe', `--root-ssh-authorized-keys=${tmp}/keys`, disk.path], base);
      argv.splice(argv.indexOf('--privileged'), 0, '-v', '/tmp:/tmp');
      const r = podman(argv);
      if (statfsSync('/tmp').type === TMPFS) {
        // bootc keeps a /tmp that already is a tmpfs: IPA's way works on such hosts only.
        expect(r.status).toBe(0);
      } else {
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`Reading ${tmp}/keys: No such file or directory`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('without --pid=host, --privileged or the image store, the container contract fails as with bootc', () => {
    const argv = installArgv({ ...plan, keysDir: undefined });
    const drop = (...xs: string[]) => {
      const a = [...argv];
      const i = a.indexOf(xs[0]!);
      a.splice(i, xs.length);
      return a;
    };
    expect(podman(drop('--pid=host')).stderr).toContain('This command must be run with the podman --pid=host flag');
    expect(podman(drop('--privileged')).stderr).toContain('Currently this command only supports being executed via podman');
    expect(podman(drop('-v', `${plan.graphRoot}:/var/lib/containers/storage`)).stderr).toMatch(/image \w+ not found in \/var\/lib\/containers\/storage/);
  });

  test('a root size bootc cannot parse, and tpm2-luks without a TPM, fail at runtime (exit 1)', () => {
    let r = podman(withBootcArgs(['install', 'to-disk', '--wipe', '--root-size=1.5G', disk.path]));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Parsing root size: invalid digit found in string');
    r = podman(installArgv({ ...plan, keysDir: undefined, tpm2Luks: true }));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Enrolling root device with TPM failed');
  });

  test('an image without bootc: podman exits 127 with runc\'s wording (not crun\'s, which IPA matches)', () => {
    const r = podman(installArgv({ ...plan, image: noBootc, keysDir: undefined }));
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/exec: "bootc": executable file not found in \$PATH/);
  });

  test('podman 4.3 has no --retry-delay (IPA passes it)', () => {
    const r = podman(['pull', '--retry-delay=5s', image]);
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('unknown flag: --retry-delay');
  });
});
