#!/usr/bin/env bash
# Installs what the agent, its demo and its tests need on Debian 12, as root:
# Debian packages (only the missing ones) and the npm dependencies (only when the lock
# file changed). Safe to run again; quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real Ironic for e2e tests and the demo: Debian's python3-ironic (21.4), not the
# ironic-api/-conductor packages, which would start daemons on all addresses.
PACKAGES=(
  python3-ironic ironic-common
  util-linux fdisk gdisk parted e2fsprogs dosfstools
  qemu-utils xz-utils zstd gzip tar iproute2 curl ca-certificates procps
  # issue 6: container steps (podman with runc, a local registry, a busybox image)
  podman runc conmon catatonit netavark docker-registry busybox-static
  # issue 5: inventory, cleaning, LLDP
  hdparm smartmontools lvm2 dmidecode ipmitool psmisc tcpdump
  # issue 4: config drives (isoinfo for the vfat rebuild, mtools to fill it; genisoimage in tests)
  genisoimage mtools
  # issue 8: building the ramdisk (depmod) and booting it (QEMU), SSH into it
  kmod qemu-system-x86 openssh-client
  # issue 9: UEFI firmware for the ramdisk under QEMU (efibootmgr against real EFI variables)
  ovmf
  # issue 7: bootc deploys (the memory check reads image manifests with skopeo); tests: a TLS +
  # htpasswd registry, the bootc double's disk tools, TPM2 LUKS against swtpm (spec/bootc.md §1)
  skopeo
  apache2-utils openssl cryptsetup-bin xfsprogs systemd swtpm swtpm-tools tpm2-tools
  libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-rc0 libtss2-tctildr0 libtss2-tcti-swtpm0 libtss2-tcti-device0
  # issue 9: boot loaders (efibootmgr in the ramdisk; here its answers check the test double)
  efibootmgr
  # issue 9: software RAID (mdadm --examine/--zero-superblock work here without the md driver;
  # the host reads the arrays the ramdisk built under QEMU)
  mdadm
)

log() { echo "setup: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (the agent and its tests use loop devices)"; exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  # No service may start during installation (Debian's policy-rc.d convention).
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# npm ci only when package-lock.json changed since the last install.
stamp=node_modules/.ina-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi
log "ready: $(node_modules/.bin/node --version) (pinned), $(dpkg-query -W -f='${Version}' python3-ironic 2>/dev/null | sed 's/^/ironic /')"
