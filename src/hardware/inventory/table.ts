import type { Inventory } from './inventory.ts';

const GiB = 2 ** 30;

function size(bytes: number | null): string {
  if (bytes === null) return '-';
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

/** The inventory for a person at a terminal: one section per part, disks and NICs as tables. */
export function renderInventory(inv: Inventory): string {
  const v = inv.system_vendor;
  const out: string[] = [
    `Host      ${inv.hostname}`,
    `System    ${[v.manufacturer, v.product_name].filter(Boolean).join(' ') || '(no SMBIOS data)'}${v.serial_number ? `  serial ${v.serial_number}` : ''}`,
    `Firmware  ${[v.firmware.vendor, v.firmware.version, v.firmware.build_date].filter(Boolean).join(' ') || '-'}`,
    `Boot      ${inv.boot.current_boot_mode}${inv.boot.pxe_interface ? `, PXE ${inv.boot.pxe_interface}` : ''}`,
    `CPU       ${inv.cpu.count ?? '?'} x ${inv.cpu.model_name ?? '?'} (${inv.cpu.architecture ?? '?'}${inv.cpu.frequency ? `, ${inv.cpu.frequency} MHz` : ''}, ${inv.cpu.socket_count ?? '?'} socket(s))`,
    `Memory    ${size(inv.memory.total)} usable, ${inv.memory.physical_mb === null ? '?' : `${inv.memory.physical_mb} MiB`} installed, ${size(inv.memory.headroom.ram_available_bytes)} available`,
    `BMC       ${inv.bmc_address ?? 'none'}${inv.bmc_v6address && inv.bmc_v6address !== '::/0' ? ` ${inv.bmc_v6address}` : ''}${inv.bmc_mac ? ` (${inv.bmc_mac})` : ''}`,
    '',
    'Disks',
  ];
  const disks = [['NAME', 'SIZE', 'MODEL', 'SERIAL', 'ROTA', 'TRAN', 'HCTL']];
  for (const d of inv.disks) disks.push([d.name, size(d.size), d.model ?? '-', d.serial ?? '-', d.rotational ? 'yes' : 'no', d.tran ?? '-', d.hctl ?? '-']);
  out.push(...(inv.disks.length ? columns(disks).map((l) => `  ${l}`) : ['  (none)']), '', 'Network interfaces');
  const nics = [['NAME', 'MAC', 'IPV4', 'IPV6', 'CARRIER', 'SPEED', 'DRIVER']];
  for (const n of inv.interfaces) {
    nics.push([n.name, n.mac_address, n.ipv4_address ?? '-', n.ipv6_address ?? '-', n.has_carrier ? 'yes' : 'no', n.speed_mbps ? `${n.speed_mbps} Mb/s` : '-', n.driver ?? '-']);
  }
  out.push(...(inv.interfaces.length ? columns(nics).map((l) => `  ${l}`) : ['  (none)']));
  if (inv.memory.headroom.tmpfs.length) {
    out.push('', 'tmpfs');
    const rows = [['MOUNT', 'FREE', 'SIZE'], ...inv.memory.headroom.tmpfs.map((t) => [t.mount, size(t.free_bytes), size(t.size_bytes)])];
    out.push(...columns(rows).map((l) => `  ${l}`));
  }
  return `${out.join('\n')}\n`;
}
