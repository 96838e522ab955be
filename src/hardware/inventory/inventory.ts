import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { AgentContext } from '../../agent-context.ts';
import type { RunCommand } from '../../run.ts';
import { listDisks, type BlockDevice } from '../block-devices.ts';
import type { DiskGuard } from '../disk-guard.ts';
import { listInterfaces, type NetworkInterface } from '../interfaces.ts';
import { collectLldp, type LldpTlv } from '../lldp.ts';
import { readBmc } from './bmc.ts';
import { readCpu, type CpuInfo } from './cpu.ts';
import { readMemory, type MemoryInfo } from './memory.ts';
import { readSystemVendor, type SystemVendor } from './system-vendor.ts';

/** A disk as the inventory serialises it: no lsblk type, no UUIDs (spec §10.1). */
export type InventoryDisk = Omit<BlockDevice, 'type'>;

/** The hardware inventory (spec §10.1), as poll.get_hardware_info and inspection send it. */
export interface Inventory {
  interfaces: NetworkInterface[];
  cpu: CpuInfo;
  disks: InventoryDisk[];
  memory: MemoryInfo;
  bmc_address: string | null;
  bmc_v6address: string | null;
  bmc_mac?: string;
  system_vendor: SystemVendor;
  boot: { current_boot_mode: 'uefi' | 'bios'; pxe_interface: string | null };
  hostname: string;
}

export interface InventorySources {
  run: RunCommand;
  diskGuard: DiskGuard;
  /** BOOTIF as given on the kernel command line. */
  bootif: string | undefined;
  /** Ironic's lookup said agent_skip_bmc_detect (management over Redfish). */
  skipBmcDetect: boolean;
  sysRoot?: string;
  /** LLDP TLVs per interface name, when ipa-collect-lldp is on. */
  lldp?: (names: string[]) => Promise<Record<string, LldpTlv[]>>;
}

/**
 * The disks the inventory reports: the machine's disks, or with an allowlist only the
 * allowlisted ones (then loop devices count), so that inspection and root device selection
 * describe the same machine.
 */
export async function inventoryDisks(run: RunCommand, guard: DiskGuard): Promise<BlockDevice[]> {
  const restricted = guard.allowlist.length > 0;
  const disks = await listDisks({ run }, { includeLoop: restricted });
  if (!restricted) return disks;
  const allowed = await Promise.all(disks.map((d) => guard.allowed(d.name)));
  return disks.filter((_, i) => allowed[i]);
}

export function serialiseDisk(disk: BlockDevice): InventoryDisk {
  const { type: _type, ...rest } = disk;
  return rest;
}

/** Collects everything at once; each part fails soft (null or empty), as IPA's collectors do. */
export async function collectInventory(src: InventorySources): Promise<Inventory> {
  const sysRoot = src.sysRoot ?? '/sys';
  const [interfaces, cpu, disks, memory, bmc, systemVendor, efi] = await Promise.all([
    listInterfaces({ run: src.run, sysRoot }),
    readCpu(src.run),
    inventoryDisks(src.run, src.diskGuard).catch(() => [] as BlockDevice[]),
    readMemory(src.run, { sysRoot }),
    readBmc(src.run, { skip: src.skipBmcDetect }),
    readSystemVendor(src.run, sysRoot),
    access(`${sysRoot}/firmware/efi`).then(() => true, () => false),
  ]);
  if (src.lldp) {
    const heard = await src.lldp(interfaces.map((i) => i.name));
    for (const nic of interfaces) nic.lldp = heard[nic.name] ?? null;
  }
  return {
    interfaces,
    cpu,
    disks: disks.map(serialiseDisk),
    memory,
    ...bmc,
    system_vendor: systemVendor,
    boot: { current_boot_mode: efi ? 'uefi' : 'bios', pxe_interface: src.bootif ?? null },
    hostname: hostname(),
  };
}

/** LLDP is heard once per agent (it takes up to ipa-lldp-timeout) and reused, as IPA caches it. */
const lldpCache = new WeakMap<AgentContext['conductor'], Promise<Record<string, LldpTlv[]>>>();

export function lldpFor(ctx: AgentContext, names: string[]): Promise<Record<string, LldpTlv[]>> {
  let cached = lldpCache.get(ctx.conductor);
  if (!cached) {
    cached = collectLldp(ctx.run, ctx.log, names, ctx.config.lldpTimeout);
    lldpCache.set(ctx.conductor, cached);
  }
  return cached;
}

export function inventoryFor(ctx: AgentContext): Promise<Inventory> {
  return collectInventory({
    run: ctx.run,
    diskGuard: ctx.diskGuard,
    bootif: ctx.config.bootif,
    skipBmcDetect: ctx.conductor.settings?.agentSkipBmcDetect === true,
    ...(ctx.config.collectLldp ? { lldp: (names: string[]) => lldpFor(ctx, names) } : {}),
  });
}
