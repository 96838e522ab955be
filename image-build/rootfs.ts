import { chmod, copyFile, cp, lstat, mkdir, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS } from './bundle.ts';
import type { Feature } from './contents.ts';
import { BuildError } from './errors.ts';
import { exec } from './exec.ts';
import { RAMDISK_LIBDIR } from './elf.ts';

const RAMDISK_FILES = fileURLToPath(new URL('./ramdisk/', import.meta.url));

/** Where the agent, its scripts and operator plugins live in the ramdisk. */
export const AGENT_DIR = 'usr/lib/ironic-node-agent';
/** Issue 6's default `ina-plugin-dir`. */
export const PLUGIN_DIR = `${AGENT_DIR}/plugins`;
/** Public keys built into the image (--ssh-authorized-keys), read by ssh-server at boot. */
export const BUILT_IN_KEYS = 'etc/ironic-node-agent/authorized_keys';

/** Permission bits that are not the normalized 0755/0644 (cpio.ts: modeOf). */
export const MODE_OVERRIDES: ReadonlyMap<string, number> = new Map([
  ['root', 0o700],
  ['home/ansible', 0o700],
  ['tmp', 0o1777],
  ['var/tmp', 0o1777],
  [BUILT_IN_KEYS, 0o600],
]);

const PATH_DIRS = ['usr/sbin', 'usr/bin', 'sbin', 'bin'];

/**
 * Copies `rel` (file, symlink or directory) from the unpacked packages into the ramdisk at
 * the same path. A symlink is kept as a symlink and its target is copied too.
 */
export async function copyFromTree(tree: string, rootfs: string, rel: string, exclude: readonly string[] = []): Promise<void> {
  if (exclude.some((x) => rel === x || rel.startsWith(`${x}/`))) return;
  const src = join(tree, rel);
  const dest = join(rootfs, rel);
  const st = await lstat(src).catch(() => undefined);
  if (!st) throw new BuildError(`${rel} is not in the downloaded packages (image-build/contents.ts lists it)`);
  if (await lstat(dest).catch(() => undefined)) return;
  await mkdir(dirname(dest), { recursive: true });
  if (st.isSymbolicLink()) {
    const target = await readlink(src);
    await symlink(target, dest);
    const resolved = target.startsWith('/') ? target.slice(1) : posix.normalize(posix.join(posix.dirname(rel), target));
    await copyFromTree(tree, rootfs, resolved, exclude);
  } else if (st.isDirectory()) {
    await mkdir(dest, { recursive: true });
    for (const name of (await readdir(src)).sort()) await copyFromTree(tree, rootfs, `${rel}/${name}`, exclude);
  } else {
    await copyFile(src, dest);
    await chmod(dest, st.mode & 0o7777);
  }
}

/**
 * busybox applets as symlinks (`busybox --list-full`), except where a real tool of the same
 * name is in the image: `ip`, `mount`, `blkid` and friends must be the real ones.
 */
export async function installBusyboxApplets(rootfs: string): Promise<number> {
  const real = new Set<string>();
  for (const dir of PATH_DIRS) {
    for (const name of await readdir(join(rootfs, dir)).catch(() => [] as string[])) {
      if (name !== 'busybox') real.add(name);
    }
  }
  const list = await exec(join(rootfs, 'bin/busybox'), ['--list-full']);
  let count = 0;
  for (const applet of list.split('\n').map((l) => l.trim()).filter(Boolean).sort()) {
    const name = posix.basename(applet);
    if (real.has(name) || applet === 'bin/busybox') continue;
    const dest = join(rootfs, applet);
    if (await lstat(dest).catch(() => undefined)) continue;
    await mkdir(dirname(dest), { recursive: true });
    await symlink('/bin/busybox', dest);
    count++;
  }
  return count;
}

export interface RootfsInputs {
  tree: string;
  rootfs: string;
  features: readonly Feature[];
  /** The stripped Node binary. */
  node: string;
  agentBundle: string;
  /** One line for /etc/ironic-node-agent/release. */
  release: string;
  ssh: boolean;
  python: boolean;
  bootc: boolean;
  authorizedKeys?: string;
  plugins?: string;
  overlay?: string;
}

/** Lays out the ramdisk's root filesystem, except kernel modules and libraries (build.ts). */
export async function assembleRootfs(i: RootfsInputs): Promise<void> {
  const { rootfs } = i;
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib64', RAMDISK_LIBDIR, 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'var/log', 'root', 'mnt', PLUGIN_DIR, 'etc/ironic-node-agent']) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  for (const feature of i.features) {
    for (const rel of feature.paths) await copyFromTree(i.tree, rootfs, rel, feature.exclude);
  }
  // The dynamic loader's fixed path (spec/ramdisk.md pitfall 5); the library itself comes with the ELF closure.
  await symlink(`/${RAMDISK_LIBDIR}/ld-linux-x86-64.so.2`, join(rootfs, 'lib64/ld-linux-x86-64.so.2'));

  await copyFile(i.node, join(rootfs, 'usr/bin/node'));
  await chmod(join(rootfs, 'usr/bin/node'), 0o755);
  await copyFile(i.agentBundle, join(rootfs, AGENT_DIR, 'agent.mjs'));
  await writeExecutable(rootfs, 'usr/bin/ironic-node-agent', `#!/bin/sh\nexec /usr/bin/node ${AGENT_NODE_FLAGS.join(' ')} /${AGENT_DIR}/agent.mjs "$@"\n`);

  await copyFile(join(RAMDISK_FILES, 'init'), join(rootfs, 'init'));
  await copyFile(join(RAMDISK_FILES, 'etc/inittab'), join(rootfs, 'etc/inittab'));
  for (const name of (await readdir(join(RAMDISK_FILES, 'lib'))).sort()) {
    if ((name === 'ssh-server' || name === 'rescue-login') && !i.ssh) continue;
    await copyFile(join(RAMDISK_FILES, 'lib', name), join(rootfs, AGENT_DIR, name));
  }
  await writeEtc(i);

  if (i.ssh) {
    await copyFile(join(RAMDISK_FILES, 'sudo'), join(rootfs, 'usr/bin/sudo'));
    await mkdir(join(rootfs, 'home/ansible'), { recursive: true });
    await mkdir(join(rootfs, 'home/rescue'), { recursive: true });
    // dropbear starts the SFTP subsystem from this path.
    await symlink('/usr/lib/openssh/sftp-server', join(rootfs, 'usr/lib/sftp-server'));
    if (i.authorizedKeys) await copyFile(i.authorizedKeys, join(rootfs, BUILT_IN_KEYS));
  }
  if (i.python) {
    await symlink('python3.11', join(rootfs, 'usr/bin/python3'));
    // Ironic's ansible interface runs /usr/bin/python unless ansible_python_interpreter says otherwise.
    await symlink('python3.11', join(rootfs, 'usr/bin/python'));
  }
  if (i.bootc) await writeContainersConf(rootfs);
  if (i.plugins) await copyTree(i.plugins, join(rootfs, PLUGIN_DIR), '--plugins');
  if (i.overlay) await copyTree(i.overlay, rootfs, '--overlay');
}

async function writeEtc(i: RootfsInputs): Promise<void> {
  const etc = (name: string, text: string) => writeFile(join(i.rootfs, 'etc', name), text);
  // '*' and not '!': dropbear refuses a locked ('!') account even for a public key.
  // rescue: locked ('!') until rescue.finalize_rescue sets its password in /etc/shadow.
  await etc(
    'passwd',
    'root:*:0:0:root:/root:/bin/sh\n' +
      (i.ssh ? 'ansible:*:0:0:Ironic ansible deploy:/home/ansible:/bin/sh\nrescue:x:0:0:Ironic rescue mode:/home/rescue:/bin/sh\n' : ''),
  );
  if (i.ssh) await writeFile(join(i.rootfs, 'etc/shadow'), 'rescue:!:0:0:99999:7:::\n', { mode: 0o600 });
  await etc('group', 'root:x:0:\ntty:x:5:\n');
  await etc('shells', '/bin/sh\n');
  await etc('hosts', '127.0.0.1 localhost\n::1 localhost\n');
  await etc('nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
  await etc('resolv.conf', '');
  await etc('hostname', 'ironic-node-agent\n');
  await etc('ironic-node-agent/release', `${i.release}\n`);
  await etc('profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TZ=UTC\nPS1="\\h:\\w# "\n');
}

/**
 * podman as the bootc step needs it in a ramdisk (spec/bootc.md §2.1): runc (crun refuses
 * hybrid cgroup layouts), cgroupfs (no systemd), file events (no journal), no pivot_root
 * (it fails on an initramfs root), host network (no bridge, no iptables in the image).
 */
async function writeContainersConf(rootfs: string): Promise<void> {
  await mkdir(join(rootfs, 'etc/containers'), { recursive: true });
  await writeFile(
    join(rootfs, 'etc/containers/containers.conf'),
    '[containers]\nnetns = "host"\ndefault_ulimits = ["nofile=65536:65536"]\n\n' +
      '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nno_pivot_root = true\n' +
      'conmon_path = ["/usr/bin/conmon"]\n\n[engine.runtimes]\nrunc = ["/usr/sbin/runc"]\n',
  );
  await writeFile(
    join(rootfs, 'etc/containers/storage.conf'),
    '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n',
  );
}

async function copyTree(src: string, dest: string, option: string): Promise<void> {
  const st = await stat(src).catch(() => undefined);
  if (!st?.isDirectory()) throw new BuildError(`${option} ${src}: not a directory`);
  await cp(src, dest, { recursive: true, dereference: true, force: true });
}

async function writeExecutable(rootfs: string, rel: string, text: string): Promise<void> {
  await writeFile(join(rootfs, rel), text);
  await chmod(join(rootfs, rel), 0o755);
}
