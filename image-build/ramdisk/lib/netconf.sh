# Network configuration helpers of the ramdisk (sourced by `network`; POSIX sh).
# Kept free of side effects so that they can be tested on any machine.

# The physical NICs (with a device behind them), sorted.
nic_list() {
  for dev in "${SYSFS:-/sys}"/class/net/*; do
    [ -e "$dev/device" ] && echo "${dev##*/}"
  done | sort
}

# bootif_mac VALUE: the MAC in BOOTIF as pxelinux passes it (01-aa-bb-cc-dd-ee-ff) or a
# plain MAC, lower case with colons; nothing when the value is not a MAC.
bootif_mac() {
  mac=$(echo "$1" | tr 'A-F-' 'a-f:')
  case "$mac" in
    01:??:??:??:??:??:??) mac=${mac#01:} ;;
  esac
  echo "$mac" | grep -Eq '^([0-9a-f]{2}:){5}[0-9a-f]{2}$' && echo "$mac"
}

# nic_by_mac MAC: the NIC with this MAC.
nic_by_mac() {
  for nic in $(nic_list); do
    [ "$(cat "${SYSFS:-/sys}/class/net/$nic/address")" = "$1" ] && { echo "$nic"; return 0; }
  done
  return 1
}

# mask_prefix MASK: 255.255.255.0 -> 24; a prefix length stays as it is; nothing if invalid.
mask_prefix() {
  case "$1" in
    '') echo 24; return ;;
    *.*.*.*) ;;
    *) echo "$1" | grep -Eq '^([0-9]|[12][0-9]|3[0-2])$' && echo "$1"; return ;;
  esac
  bits=0 ended=0
  old=$IFS; IFS=.; set -- $1; IFS=$old
  [ $# -eq 4 ] || return
  for octet in "$@"; do
    # Contiguous masks only: after the first octet below 255 every octet must be 0.
    if [ "$ended" = 1 ]; then [ "$octet" = 0 ] || return; continue; fi
    case "$octet" in
      255) bits=$((bits + 8)); continue ;; 254) bits=$((bits + 7)) ;; 252) bits=$((bits + 6)) ;;
      248) bits=$((bits + 5)) ;; 240) bits=$((bits + 4)) ;; 224) bits=$((bits + 3)) ;;
      192) bits=$((bits + 2)) ;; 128) bits=$((bits + 1)) ;; 0) ;; *) return ;;
    esac
    ended=1
  done
  echo "$bits"
}

# parse_ip VALUE: one ip= parameter, in the kernel's form
#   ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>
# or dracut's ip=<device>:<method>, or a bare method (dhcp, on, any, off, none, dhcp6, auto6).
# Prints one line of shell assignments: method= device= address= prefix= gateway= hostname= dns=
# method is static, dhcp, auto6 (IPv6 autoconfiguration only) or off; "error=..." on bad input.
parse_ip() {
  value=$1
  case "$value" in
    *"'"*|*'"'*|*'\\'*) echo "error='quotes and backslashes are not allowed in ip='"; return ;;
    off|none) echo "method=off"; return ;;
    dhcp|on|any|both|bootp|rarp) echo "method=dhcp"; return ;;
    dhcp6|auto6) echo "method=auto6"; return ;;
    *'['*) echo "error='IPv6 addresses in ip= are not supported; use DHCP or SLAAC'"; return ;;
  esac
  old=$IFS; IFS=:; set -f; set -- $value; set +f; IFS=$old
  if [ $# -eq 2 ]; then
    case "$2" in
      dhcp|on|any) echo "method=dhcp device='$1'"; return ;;
      dhcp6|auto6) echo "method=auto6 device='$1'"; return ;;
      off|none) echo "method=off device='$1'"; return ;;
    esac
  fi
  client=$1 gateway=$3 mask=$4 host=$5 device=$6 autoconf=$7 dns="$8 $9"
  case "$autoconf" in
    dhcp|on|any|both) echo "method=dhcp device='$device' hostname='$host'"; return ;;
    dhcp6|auto6) echo "method=auto6 device='$device' hostname='$host'"; return ;;
    ''|off|none|static) ;;
    *) echo "error='unknown autoconf method \"$autoconf\" in ip=$value'"; return ;;
  esac
  if ! echo "$client" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$'; then
    echo "error='ip=$value has no client address (ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:off)'"
    return
  fi
  prefix=$(mask_prefix "$mask")
  [ -n "$prefix" ] || { echo "error='bad netmask \"$mask\" in ip=$value'"; return; }
  echo "method=static device='$device' address='$client' prefix='$prefix' gateway='$gateway' hostname='$host' dns='$(echo $dns)'"
}
