import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { bootloaderInstallers } from '../../src/bootloader/index.ts';
import { imageExtension, type InstallBootloaderParams } from '../../src/extensions/image.ts';
import type { CommandContext } from '../../src/extensions/types.ts';
import {
  DEBIAN_BOOT_CSV, debianLoaders, espFiles, espRead, installBusybox, installGrubDoubles, makeTargetDisk, withMounted,
  type TargetDisk, type TargetDiskOptions,
} from '../helpers/bootloader-disks.ts';
import { efibootmgrDouble, type DoubleState } from '../helpers/efibootmgr-double.ts';
import { isRoot, prerequisite } from '../helpers/env.ts';
import { stepContext } from '../helpers/erase-context.ts';

const canRun = prerequisite('root (loop devices, mount, chroot)', isRoot && existsSync('/bin/busybox') && existsSync('/usr/bin/mcopy'));

const work = mkdtempSync(join(tmpdir(), 'ina-bootloader-'));
/** A sysfs stand-in with firmware/efi: how a test tells the agent its ramdisk booted via UEFI. */
const uefiSys = join(work, 'sys');
mkdirSync(join(uefiSys, 'firmware/efi'), { recursive: true });

/** Mounts this code made and did not remove: none may outlive a command, whatever happened. */
const leftovers = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => /ina-(target|inspect)-/.test(l));

const NVRAM: DoubleState = {
  bootCurrent: 1,
  timeout: 0,
  bootOrder: [1, 0, 3],
  entries: [
    { num: 0, label: 'ironic1', active: true, devicePath: 'HD(1,GPT,da6b4491-61f2-42b0-8ab1-7c4a87317c4e,0x800,0x64000)/File(\\EFI\\BOOT\\BOOTX64.EFI)' },
    { num: 1, label: 'UEFI: PXE IPv4 Intel(R) Ethernet', active: true, devicePath: 'PciRoot(0x0)/Pci(0x1c,0x0)/MAC(525400123456,0)/IPv4(0.0.0.00.0.0.0,0,0)', optionalData: '..BO' },
    { num: 3, label: 'debian', active: true, devicePath: 'HD(1,GPT,34178504-2340-4fe0-8001-264372cf9b2d,0x800,0x64000)/File(\\EFI\\debian\\shimx64.efi)' },
  ],
};

interface Scenario {
  /** The ramdisk booted via UEFI (the fake sysfs) and has NVRAM (the efibootmgr double). */
  uefiRamdisk: boolean;
  flags?: Record<string, boolean>;
  nvram?: DoubleState;
}

/** image.install_bootloader as the agent runs it, on `target`, with the real tools and a real disk guard. */
function scenario(s: Scenario) {
  const double = efibootmgrDouble(mkdtempSync(join(work, 'efi-')), s.nvram ?? NVRAM);
  const ext = imageExtension(bootloaderInstallers({ efibootmgr: double.bin }), { sysRoot: s.uefiRamdisk ? uefiSys : '/sys' });
  const install = async (target: TargetDisk, params: InstallBootloaderParams) => {
    const { ctx, logs } = stepContext([target.disk], { flags: s.flags });
    ctx.conductor.node = { uuid: 'node-9', properties: { root_device: { name: target.disk } } };
    const cctx = Object.assign(Object.create(ctx) as CommandContext, { signal: new AbortController().signal, commandName: 'install_bootloader' });
    try {
      await ext.commands.install_bootloader!.run(params, cctx);
      return { error: undefined, logs: logs() };
    } catch (err) {
      return { error: err as { type: string; details: string }, logs: logs() };
    } finally {
      expect(leftovers()).toEqual([]);
    }
  };
  return { install, double };
}

const disks: TargetDisk[] = [];
async function disk(opts: TargetDiskOptions): Promise<TargetDisk> {
  const d = await makeTargetDisk(opts);
  disks.push(d);
  return d;
}

afterAll(async () => {
  for (const d of disks) await d.destroy();
  rmSync(work, { recursive: true, force: true });
});

/** A partition image's root: the ESP's content under /boot/efi/EFI, plus things that must not be copied. */
function partitionImageRoot(loaders: Record<string, Buffer>, extra: Record<string, string> = {}): Pick<TargetDiskOptions, 'rootFiles' | 'prepareRoot'> {
  const rootFiles: Record<string, Buffer | string> = { 'etc/fstab': 'LABEL=img-rootfs\t/\text4\tdefaults\t0\t1\n', ...extra };
  for (const [path, content] of Object.entries(loaders)) rootFiles[`boot/efi/${path}`] = content;
  return {
    rootFiles,
    prepareRoot: (dir) => {
      // An absolute symlink resolves against the ramdisk when read from a mount: never followed.
      mkdirSync(join(dir, 'boot/efi/EFI/debian'), { recursive: true });
      symlinkSync('/etc/shadow', join(dir, 'boot/efi/EFI/debian/shadow.efi'));
      execFileSync('mkfifo', [join(dir, 'boot/efi/EFI/debian/pipe')]);
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const diskHash = (d: TargetDisk) => sha(readFileSync(d.loop.file));

describe.skipIf(!canRun)('image.install_bootloader on a ramdisk booted via UEFI (NVRAM through the efibootmgr double)', () => {
  test('whole-disk image with a populated ESP: the BOOTX64.CSV entry replaces the one with the same label; nothing else changes', async () => {
    const loaders = { ...debianLoaders(), 'EFI/BOOT/BOOTX64.EFI': randomish(1) };
    const target = await disk({ espFiles: loaders });
    const before = diskHash(target);
    const { install, double } = scenario({ uefiRamdisk: true });
    const r = await install(target, { root_uuid: '0x00000000', efi_system_part_uuid: null, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(double.calls().map((c) => c.argv)).toEqual([
      ['--version'],
      ['-v'],
      ['-b', '0003', '-B'],
      ['-v', '-c', '-d', target.disk, '-p', '1', '-w', '-L', 'debian', '-l', '\\EFI\\debian\\shimx64.efi'],
    ]);
    expect(double.calls().every((c) => c.exit === 0)).toBe(true);
    const entries = double.state().entries;
    expect(entries.map((e) => e.label)).toEqual(['ironic1', 'UEFI: PXE IPv4 Intel(R) Ethernet', 'debian']);
    expect(entries[2]!.devicePath).toBe(`HD(1,GPT,${target.espPartUuid},0x800,0x20000)/File(\\EFI\\debian\\shimx64.efi)`);
    expect(double.state().bootOrder![0]).toBe(entries[2]!.num);
    // Nothing written to the disk: registering reads the ESP only.
    expect(diskHash(target)).toBe(before);
  });

  test('no CSV: each loader is ironicN, older ironicN entries removed first; efibootmgr printing UTF-16 is understood', async () => {
    const target = await disk({ espFiles: { 'EFI/BOOT/BOOTX64.EFI': randomish(2), 'EFI/Microsoft/Boot/winload.efi': randomish(3) } });
    const { install, double } = scenario({ uefiRamdisk: true, nvram: { ...NVRAM, encoding: 'utf-16' } });
    const r = await install(target, { root_uuid: null, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(double.calls().slice(2).map((c) => c.argv)).toEqual([
      ['-b', '0000', '-B'],
      ['-v', '-c', '-d', target.disk, '-p', '1', '-w', '-L', 'ironic1', '-l', '\\EFI\\BOOT\\BOOTX64.EFI'],
      ['-v', '-c', '-d', target.disk, '-p', '1', '-w', '-L', 'ironic2', '-l', '\\EFI\\Microsoft\\Boot\\winload.efi'],
    ]);
    expect(double.state().entries.map((e) => e.label).sort()).toEqual(['UEFI: PXE IPv4 Intel(R) Ethernet', 'debian', 'ironic1', 'ironic2']);
  });

  test('partition image, empty ESP: the image\'s /boot/efi/EFI is copied (no symlink, no FIFO), registered from its CSV, and the ESP added to its fstab', async () => {
    const loaders = debianLoaders();
    const target = await disk(partitionImageRoot(loaders));
    const { install, double } = scenario({ uefiRamdisk: true });
    const r = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espUuid, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(espFiles(target.esp!).sort()).toEqual(Object.keys(loaders).sort());
    for (const [path, content] of Object.entries(loaders)) expect(sha(espRead(target.esp!, path))).toBe(sha(content));
    expect(r.logs.find((l) => l.msg === 'left out of the EFI assets copied from the image')?.skipped).toEqual([
      '/boot/efi/EFI/debian/pipe (not a regular file)',
      '/boot/efi/EFI/debian/shadow.efi (a symlink)',
    ]);
    expect(double.calls().at(-1)!.argv).toEqual(['-v', '-c', '-d', target.disk, '-p', '1', '-w', '-L', 'debian', '-l', '\\EFI\\debian\\shimx64.efi']);
    withMounted(target.root, (root) => {
      expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toBe(`LABEL=img-rootfs\t/\text4\tdefaults\t0\t1\nUUID=${target.espUuid}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`);
    });
  });

  test("RHEL layout: /boot/grub2/grub.cfg and grubenv go next to the loaders (IPA's _preserve_efi_assets); the fstab names the PARTUUID it was given", async () => {
    const loaders = { 'EFI/redhat/shimx64.efi': randomish(4), 'EFI/redhat/grubx64.efi': randomish(5), 'EFI/redhat/BOOTX64.CSV': Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('shimx64.efi,Red Hat Enterprise Linux,,This is the boot entry for Red Hat\n', 'utf16le')]) };
    const target = await disk(partitionImageRoot(loaders, { 'boot/grub2/grub.cfg': 'set default=0\n', 'boot/grub2/grubenv': '# GRUB Environment Block\n' }));
    const { install, double } = scenario({ uefiRamdisk: true });
    const r = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espPartUuid, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(espRead(target.esp!, 'EFI/redhat/grub.cfg').toString()).toBe('set default=0\n');
    expect(espRead(target.esp!, 'EFI/redhat/grubenv').toString()).toBe('# GRUB Environment Block\n');
    expect(double.calls().at(-1)!.argv).toContain('Red Hat Enterprise Linux');
    withMounted(target.root, (root) => expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toContain(`PARTUUID=${target.espPartUuid}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`));
  });

  test('partition image without EFI assets: empty ESP falls through to grub, which is disallowed (InvalidImage); NVRAM untouched', async () => {
    const target = await disk({ rootFiles: { 'etc/fstab': '' } });
    const { install, double } = scenario({ uefiRamdisk: true });
    const r = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espUuid, target_boot_mode: 'uefi' });
    expect(r.error).toMatchObject({ type: 'InvalidImage', details: expect.stringMatching(/CVE-2026-43003/) });
    expect(r.logs.some((l) => l.msg === 'Empty EFI partition detected.')).toBe(true);
    expect(double.calls().map((c) => c.argv)).toEqual([['--version']]);
    expect(espFiles(target.esp!)).toEqual([]);
  });

  test('no ESP at all: DeviceNotFound with IPA\'s message; a UUID that names no partition: DeviceNotFound too', async () => {
    const target = await disk({ espType: null });
    const { install } = scenario({ uefiRamdisk: true });
    const r = await install(target, { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    expect(r.error).toMatchObject({ type: 'DeviceNotFound', details: `No EFI partition could be detected on device ${target.disk} and EFI partition UUID has not been recorded during deployment (which is often the case for whole disk images). Are you using a UEFI-compatible image?` });
    const r2 = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: 'DEAD-BEEF', target_boot_mode: 'uefi' });
    expect(r2.error).toMatchObject({ type: 'DeviceNotFound', details: `No partition with UUID DEAD-BEEF found on device ${target.disk}` });
  });

  test('an efibootmgr failure is IPA\'s CommandExecutionError; with ignore_bootloader_failure the whole-disk deploy goes on', async () => {
    const target = await disk({ espFiles: { 'EFI/BOOT/BOOTX64.EFI': randomish(6) } });
    const { install, double } = scenario({ uefiRamdisk: true });
    // A ramdisk that booted via UEFI but whose efivars are gone: efibootmgr -v exits 2.
    rmSync(double.statePath);
    const r = await install(target, { root_uuid: null, target_boot_mode: 'uefi' });
    expect(r.error).toMatchObject({ type: 'CommandExecutionError', details: expect.stringMatching(new RegExp(`^Could not configure UEFI boot on device ${target.disk}: .*EFI variables are not supported on this system`)) });
    expect((await install(target, { root_uuid: null, target_boot_mode: 'uefi', ignore_bootloader_failure: true })).error).toBeUndefined();
  });

  test('a mounted partition on the disk: the disk guard refuses before anything is read or written', async () => {
    const target = await disk({ espFiles: { 'EFI/BOOT/BOOTX64.EFI': randomish(7) } });
    const { install, double } = scenario({ uefiRamdisk: true });
    const dir = mkdtempSync(join(tmpdir(), 'ina-busy-'));
    execFileSync('mount', ['-o', 'ro', target.root, dir]);
    try {
      const r = await install(target, { root_uuid: null, target_boot_mode: 'uefi' });
      expect(r.error).toMatchObject({ type: 'UnsafeDeviceError' });
    } finally {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true });
    }
    expect(double.calls().map((c) => c.argv)).toEqual([['--version']]);
  });
});

describe.skipIf(!canRun)('image.install_bootloader for a UEFI target on a ramdisk booted via BIOS (no NVRAM: this machine)', () => {
  test('partition image: assets preserved, shim becomes \\EFI\\BOOT\\BOOTX64.EFI with grub, MokManager, fallback and grub.cfg beside it; fstab; a warning; efibootmgr never run', async () => {
    const loaders = debianLoaders();
    const target = await disk(partitionImageRoot(loaders));
    const { install, double } = scenario({ uefiRamdisk: false });
    const r = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espUuid, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(double.calls()).toEqual([]);
    const onEsp = espFiles(target.esp!);
    expect(onEsp.filter((f) => f.startsWith('EFI/BOOT/')).sort()).toEqual(['EFI/BOOT/BOOTX64.EFI', 'EFI/BOOT/fbx64.efi', 'EFI/BOOT/grub.cfg', 'EFI/BOOT/grubx64.efi', 'EFI/BOOT/mmx64.efi']);
    expect(sha(espRead(target.esp!, 'EFI/BOOT/BOOTX64.EFI'))).toBe(sha(loaders['EFI/debian/shimx64.efi']!));
    expect(sha(espRead(target.esp!, 'EFI/BOOT/grubx64.efi'))).toBe(sha(loaders['EFI/debian/grubx64.efi']!));
    expect(espRead(target.esp!, 'EFI/debian/BOOTX64.CSV').equals(DEBIAN_BOOT_CSV)).toBe(true);
    expect(r.logs.find((l) => String(l.msg).startsWith('The ramdisk did not boot via UEFI'))).toMatchObject({ level: 40, loader: '\\EFI\\BOOT\\BOOTX64.EFI' });
    expect(r.logs.some((l) => /Boot mode mismatch: target boot mode is uefi, current boot mode is bios/.test(String(l.msg)))).toBe(true);
    withMounted(target.root, (root) => expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toContain(`UUID=${target.espUuid}\t/boot/efi\tvfat`));
    // Idempotent: a second call finds the loader in place and changes nothing.
    const before = diskHash(target);
    expect((await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espUuid, target_boot_mode: 'uefi' })).error).toBeUndefined();
    expect(diskHash(target)).toBe(before);
  });

  test('an ESP found only by its UUID (typed basic data, not EF00), with loaders but no fallback: the fallback is added, nothing else', async () => {
    const target = await disk({ espType: '0700', espFiles: { 'EFI/ubuntu/grubx64.efi': randomish(8) } });
    const { install } = scenario({ uefiRamdisk: false });
    const r = await install(target, { root_uuid: target.rootUuid, efi_system_part_uuid: target.espUuid, target_boot_mode: 'uefi' });
    expect(r.error).toBeUndefined();
    expect(espFiles(target.esp!).sort()).toEqual(['EFI/BOOT/BOOTX64.EFI', 'EFI/ubuntu/grubx64.efi']);
    // Not preserved from the root (the ESP was not empty), so the image's fstab is left alone.
    expect(r.logs.some((l) => l.msg === "ESP entry in the image's /etc/fstab")).toBe(false);
  });

  test('an image with its own fallback loader: untouched, success', async () => {
    const target = await disk({ espFiles: { ...debianLoaders(), 'EFI/BOOT/BOOTX64.EFI': randomish(9) } });
    const before = diskHash(target);
    const { install } = scenario({ uefiRamdisk: false });
    expect((await install(target, { root_uuid: '0x00000000', target_boot_mode: 'uefi' })).error).toBeUndefined();
    expect(diskHash(target)).toBe(before);
  });

  test('whole-disk image without an ESP: left byte for byte as it is, success (IPA\'s outcome)', async () => {
    const target = await disk({ espType: null });
    const before = diskHash(target);
    const { install } = scenario({ uefiRamdisk: false });
    expect((await install(target, { root_uuid: '0x00000000', target_boot_mode: 'uefi' })).error).toBeUndefined();
    expect(diskHash(target)).toBe(before);
  });

  test('partition image without an ESP: DeviceNotFound; with an ESP but no loaders anywhere: InvalidImage (grub disallowed)', async () => {
    const noEsp = await disk({ espType: null });
    const { install } = scenario({ uefiRamdisk: false });
    expect((await install(noEsp, { root_uuid: noEsp.rootUuid, target_boot_mode: 'uefi' })).error).toMatchObject({ type: 'DeviceNotFound' });
    const empty = await disk({ rootFiles: { 'etc/fstab': '' } });
    expect((await install(empty, { root_uuid: empty.rootUuid, efi_system_part_uuid: empty.espUuid, target_boot_mode: 'uefi' })).error).toMatchObject({ type: 'InvalidImage' });
    // grub allowed: it refuses UEFI grub into the ESP with a reason, and mounts nothing.
    const allowed = scenario({ uefiRamdisk: false, flags: { 'enable-bios-bootloader-install': true } });
    expect((await allowed.install(empty, { root_uuid: empty.rootUuid, efi_system_part_uuid: empty.espUuid, target_boot_mode: 'uefi' })).error).toMatchObject({
      type: 'CommandExecutionError', details: expect.stringMatching(/does not run grub-install for UEFI/),
    });
  });

  test('an ESP that is not FAT: a clear failure from mtools, nothing mounted', async () => {
    const target = await disk({});
    execFileSync('mkfs.ext4', ['-q', '-F', target.esp!]);
    const { install } = scenario({ uefiRamdisk: false });
    const r = await install(target, { root_uuid: '0x00000000', target_boot_mode: 'uefi' });
    expect(r.error).toMatchObject({ type: 'CommandExecutionError', details: expect.stringMatching(/^Could not configure UEFI boot on device .*mdir .*non DOS media/) });
  });
});

/** A root for grub: busybox, the grub doubles, and optionally tenant code for grub-mkconfig to run. */
function grubRoot(extra: Record<string, string> = {}, name: 'grub' | 'grub2' = 'grub'): Pick<TargetDiskOptions, 'prepareRoot'> {
  return {
    prepareRoot: (dir) => {
      installBusybox(dir);
      installGrubDoubles(dir, name);
      mkdirSync(join(dir, `boot/${name}`), { recursive: true });
      for (const [path, content] of Object.entries(extra)) {
        mkdirSync(join(dir, path, '..'), { recursive: true });
        writeFileSync(join(dir, path), content);
      }
    },
  };
}

const grubLog = (t: TargetDisk) => withMounted(t.root, (root) => readFileSync(join(root, 'var/log/grub-double.log'), 'utf8'));

describe.skipIf(!canRun)('image.install_bootloader for BIOS: grub-install in a chroot (grub doubles, real chroot and mounts)', () => {
  const allowed = { uefiRamdisk: false, flags: { 'enable-bios-bootloader-install': true } };

  test('grub allowed: grub-install <disk> and grub-mkconfig run in the image with /dev, /proc, /run, /sys mounted, a clean environment, and everything unmounted after', async () => {
    const target = await disk({ table: 'dos', ...grubRoot() });
    process.env.INA_TEST_SECRET = 'must-not-reach-tenant-code';
    const { install } = scenario(allowed);
    const r = await install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' });
    delete process.env.INA_TEST_SECRET;
    expect(r.error).toBeUndefined();
    const log = grubLog(target);
    expect(log).toMatch(new RegExp(`^argv: grub-install ${target.disk}$`, 'm'));
    expect(log.match(/^mounted: .*$/gm)).toEqual(['mounted: /dev', 'mounted: /proc', 'mounted: /run', 'mounted: /sys']);
    expect(log).toMatch(/^env: PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    expect(log).not.toMatch(/INA_TEST_SECRET|must-not-reach/);
    expect(log).toMatch(/^argv: grub-mkconfig -o \/boot\/grub\/grub.cfg$/m);
    expect(log).toMatch(/^mkconfig-env: GRUB_DISABLE_OS_PROBER=true GRUB_SAVEDEFAULT=true LC_ALL=C$/m);
    withMounted(target.root, (root) => expect(readFileSync(join(root, 'boot/grub/grub.cfg'), 'utf8')).toContain('grub-mkconfig double'));
    // grub's boot.img position: the double wrote its marker where grub-install writes.
    expect(readFileSync(target.loop.file).subarray(0, 11).toString()).toBe('GRUB-DOUBLE');
  });

  test('grub2 naming (usr/sbin/grub2-install in the image) gives grub2-install and /boot/grub2/grub.cfg', async () => {
    const target = await disk({ table: 'dos', ...grubRoot({}, 'grub2') });
    const r = await scenario(allowed).install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' });
    expect(r.error).toBeUndefined();
    expect(grubLog(target)).toMatch(/^argv: grub2-install .*\nargv: grub2-mkconfig -o \/boot\/grub2\/grub.cfg$/ms);
  });

  test('grub disallowed (the default): InvalidImage and nothing touched; ignore_bootloader_failure makes it a success', async () => {
    const target = await disk({ table: 'dos', ...grubRoot() });
    const before = diskHash(target);
    const { install } = scenario({ uefiRamdisk: false });
    expect((await install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' })).error).toMatchObject({
      type: 'InvalidImage', details: 'Install of legacy BIOS bootloaders disabled by CONF.enable_bios_bootloader_install as part of CVE-2026-43003 mitigation.',
    });
    expect((await install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios', ignore_bootloader_failure: true })).error).toBeUndefined();
    expect(diskHash(target)).toBe(before);
  });

  test('grub-install fails: IPA\'s CommandExecutionError with grub\'s message, and every mount is gone', async () => {
    const target = await disk({ table: 'dos', ...grubRoot({ 'etc/grub-double-fail': 'cannot find a GRUB drive for /dev/loop' }) });
    const r = await scenario(allowed).install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' });
    expect(r.error).toMatchObject({ type: 'CommandExecutionError', details: expect.stringMatching(new RegExp(`^Installing GRUB2 boot loader to device ${target.disk} failed with chroot .* grub-install ${target.disk} exited with 1: .*cannot find a GRUB drive`)) });
  });

  test('tenant code that mounts inside the chroot and leaves a process running there: both cleaned up', async () => {
    const hook = 'mkdir -p /mnt/tenant && mount -t tmpfs none /mnt/tenant\nsleep 300 </dev/null >/dev/null 2>&1 &\n';
    const target = await disk({ table: 'dos', ...grubRoot({ 'etc/grub.d/tenant-hook': hook }) });
    const r = await scenario(allowed).install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' });
    expect(r.error).toBeUndefined();
    // leftovers() (checked after every command) saw no mount; no process has its root in a target directory.
    const rooted = execFileSync('sh', ['-c', 'for p in /proc/[0-9]*; do readlink $p/root; done 2>/dev/null || true'], { encoding: 'utf8' });
    expect(rooted).not.toMatch(/ina-target-/);
  });

  test('an image whose /dev is a symlink: refused before any bind mount (it would land on the ramdisk\'s own directory)', async () => {
    const target = await disk({
      table: 'dos',
      prepareRoot: (dir) => {
        grubRoot().prepareRoot!(dir);
        rmSync(join(dir, 'dev'), { recursive: true });
        symlinkSync('/tmp', join(dir, 'dev'));
      },
    });
    const r = await scenario(allowed).install(target, { root_uuid: target.rootUuid, target_boot_mode: 'bios' });
    expect(r.error).toMatchObject({ type: 'CommandExecutionError', details: '/dev in the image is a symlink; refusing to mount over it' });
  });

  test('GPT: grub-install embeds into the BIOS boot partition the layout made; without one it fails with grub\'s error, and the command with it', async () => {
    const withBiosBoot = await disk({ table: 'gpt', espType: null, ...grubRoot() });
    const ok = await scenario(allowed).install(withBiosBoot, { root_uuid: withBiosBoot.rootUuid, target_boot_mode: 'bios' });
    expect(ok.error).toBeUndefined();
    expect(grubLog(withBiosBoot)).toMatch(new RegExp(`^installed: ${withBiosBoot.disk}$`, 'm'));

    const without = await disk({ table: 'gpt', espType: 'EF00', ...grubRoot() });
    const r = await scenario(allowed).install(without, { root_uuid: without.rootUuid, target_boot_mode: 'bios' });
    expect(r.error).toMatchObject({
      type: 'CommandExecutionError',
      details: expect.stringMatching(new RegExp(`^Installing GRUB2 boot loader to device ${without.disk} failed with .*contains no BIOS Boot Partition.*will not proceed with blocklists`, 's')),
    });
  });

  test('a root_uuid that names no partition: DeviceNotFound', async () => {
    const target = await disk({ table: 'dos', ...grubRoot() });
    const r = await scenario(allowed).install(target, { root_uuid: '11111111-2222-3333-4444-555555555555', target_boot_mode: 'bios' });
    expect(r.error).toMatchObject({ type: 'DeviceNotFound', details: `No partition with UUID 11111111-2222-3333-4444-555555555555 found on device ${target.disk}` });
  });

  test('PReP (ppc64, deprecated): grub-install gets the PReP partition, named by its PARTUUID', async () => {
    const target = await disk({ table: 'dos', firstPartitionType: '41', ...grubRoot({ 'etc/grub-double-platform': 'powerpc-ieee1275' }) });
    const prep = target.loop.partition(1);
    const prepUuid = execFileSync('blkid', ['-p', '-o', 'value', '-s', 'PART_ENTRY_UUID', prep], { encoding: 'utf8' }).trim();
    const r = await scenario(allowed).install(target, { root_uuid: target.rootUuid, prep_boot_part_uuid: prepUuid, target_boot_mode: 'bios' });
    expect(r.error).toBeUndefined();
    expect(grubLog(target)).toMatch(new RegExp(`^argv: grub-install ${prep}$`, 'm'));
    expect(r.logs.some((l) => /PReP partition support is deprecated/.test(String(l.msg)))).toBe(true);
  });
});

function randomish(seed: number): Buffer {
  return createHash('sha512').update(String(seed)).digest();
}

