import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentContext } from '../agent-context.ts';
import type { Clock } from '../clock.ts';
import { pickRootDevice } from '../hardware/root-device.ts';
import { inventoryDisks, inventoryFor, lldpFor, serialiseDisk } from '../hardware/inventory/inventory.ts';
import { listInterfaces } from '../hardware/interfaces.ts';
import { collectSystemLogs } from '../hardware/system-logs.ts';

/** The inspection body being built (spec §5): collectors add their keys. */
export type InspectionData = Record<string, unknown>;

export interface CollectorContext {
  ctx: AgentContext;
  clock: Clock;
  signal?: AbortSignal | undefined;
  names: readonly string[];
}

type Collector = (data: InspectionData, c: CollectorContext) => Promise<void>;

const read = async (path: string) => (await readFile(path, 'utf8').catch(() => '')).trim();
const hex = (v: string) => v.replace(/^0x/, '');

/** BOOTIF `01-aa-bb-...` or `aa:bb:...` as a lower-case colon MAC. */
export function bootifMac(bootif: string | undefined): string | undefined {
  if (!bootif) return undefined;
  return bootif.replace(/^01-/, '').replace(/-/g, ':').toLowerCase();
}

/**
 * IPA's `default` collector first waits for DHCP (spec §1.2): the PXE NIC, or every NIC with
 * ipa-inspection-dhcp-all-interfaces, must have an IPv4 address, for at most the timeout.
 */
async function waitForDhcp(c: CollectorContext): Promise<void> {
  const { config, run, log } = c.ctx;
  const pxe = bootifMac(config.bootif);
  if (!pxe && !config.inspectionDhcpAllInterfaces) return;
  const deadline = c.clock.now() + config.inspectionDhcpWaitTimeout;
  for (;;) {
    const nics = await listInterfaces({ run });
    const waiting = nics.filter((n) => (config.inspectionDhcpAllInterfaces || n.mac_address === pxe) && !n.ipv4_address).map((n) => n.name);
    if (waiting.length === 0) return;
    if (c.clock.now() >= deadline) {
      log.warn({ waiting }, 'interfaces still have no IPv4 address; inspecting anyway');
      return;
    }
    await c.clock.sleep(1, c.signal);
  }
}

const collectDefault: Collector = async (data, c) => {
  await waitForDhcp(c);
  const inventory = await inventoryFor(c.ctx);
  data.inventory = inventory;
  let rootDisk = null;
  try {
    rootDisk = serialiseDisk(pickRootDevice(await inventoryDisks(c.ctx.run, c.ctx.diskGuard), undefined));
  } catch {
    // no disk of at least 4 GiB: IPA sends null
  }
  data.root_disk = rootDisk;
  data.boot_interface = c.ctx.config.bootif ?? null;
  data.configuration = {
    collectors: c.names,
    managers: c.ctx.steps.list().map((p) => ({ name: p.name, version: p.version })),
  };
};

const collectLogs: Collector = async (data, c) => {
  const tgz = await collectSystemLogs({ run: c.ctx.run, log: c.ctx.log, agentLog: c.ctx.logRing.contents() });
  data.logs = tgz.toString('base64');
};

/** `pci_devices`: ids from /sys/bus/pci/devices, hex without 0x (spec §10.3). */
const collectPci: Collector = async (data) => {
  const dir = '/sys/bus/pci/devices';
  const devices = [];
  for (const bus of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const d = join(dir, bus);
    const numa = await read(join(d, 'numa_node'));
    devices.push({
      vendor_id: hex(await read(join(d, 'vendor'))),
      product_id: hex(await read(join(d, 'device'))),
      class: hex(await read(join(d, 'class'))),
      revision: hex(await read(join(d, 'revision'))),
      bus,
      numa_node_id: numa === '' || numa === '-1' ? null : Number(numa),
    });
  }
  data.pci_devices = devices;
};

/** `numa_topology`: memory, CPUs with thread siblings, and NICs per NUMA node (spec §10.3). */
const collectNuma: Collector = async (data) => {
  const base = '/sys/devices/system/node';
  const nodes = (await readdir(base).catch(() => [] as string[])).filter((n) => /^node\d+$/.test(n));
  if (nodes.length === 0) throw new Error('no NUMA information in /sys/devices/system/node');
  const ram = [];
  const cpus = [];
  for (const node of nodes) {
    const id = Number(node.slice(4));
    const kb = /MemTotal:\s+(\d+) kB/.exec(await read(join(base, node, 'meminfo')))?.[1];
    ram.push({ numa_node: id, size_kb: kb === undefined ? null : Number(kb) });
    for (const cpu of (await readdir(join(base, node))).filter((e) => /^cpu\d+$/.test(e))) {
      const siblings = await read(join(base, node, cpu, 'topology/thread_siblings_list'));
      cpus.push({ cpu: Number(cpu.slice(3)), numa_node: id, thread_siblings: expandList(siblings) });
    }
  }
  const nics = [];
  for (const name of (await readdir('/sys/class/net').catch(() => [] as string[])).sort()) {
    const numa = await read(join('/sys/class/net', name, 'device/numa_node'));
    if (numa !== '' && numa !== '-1') nics.push({ name, numa_node: Number(numa) });
  }
  data.numa_topology = { ram, cpus: cpus.sort((a, b) => a.cpu - b.cpu), nics };
};

/** `0-3,8` -> [0, 1, 2, 3, 8] */
export function expandList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out.push(i);
  }
  return out;
}

/** `dmi`: the bios, processor and memory sections of dmidecode, as key/value dicts. */
const collectDmi: Collector = async (data, c) => {
  const text = await c.ctx.run('dmidecode', ['-t', 'bios', '-t', 'processor', '-t', 'memory']);
  data.dmi = parseDmiSections(text);
};

export function parseDmiSections(text: string): { bios: Record<string, string>; cpu: Record<string, string>[]; memory: { devices: Record<string, string>[] } } {
  const result = { bios: {} as Record<string, string>, cpu: [] as Record<string, string>[], memory: { devices: [] as Record<string, string>[] } };
  for (const block of text.split(/\n(?=Handle 0x)/)) {
    const lines = block.split('\n');
    const title = lines[1]?.trim();
    const fields: Record<string, string> = {};
    for (const line of lines.slice(2)) {
      const m = /^\t([^\t:][^:]*):\s*(.*)$/.exec(line);
      if (m) fields[m[1]!.trim()] = m[2]!.trim();
    }
    if (title === 'BIOS Information') result.bios = fields;
    else if (title === 'Processor Information') result.cpu.push(fields);
    else if (title === 'Memory Device') result.memory.devices.push(fields);
  }
  return result;
}

/** `lldp_raw`: the TLVs heard on each interface (spec §10.3), whatever ipa-collect-lldp says. */
const collectLldpRaw: Collector = async (data, c) => {
  const names = (await listInterfaces({ run: c.ctx.run, withAddresses: false })).map((n) => n.name);
  data.lldp_raw = await lldpFor(c.ctx, names);
};

export const COLLECTORS: Record<string, Collector> = {
  default: collectDefault,
  logs: collectLogs,
  'pci-devices': collectPci,
  'numa-topology': collectNuma,
  'dmi-decode': collectDmi,
  lldp: collectLldpRaw,
};

/** Runs the collectors in order; a failing or unknown one is noted and the rest still run (IPA). */
export async function runCollectors(c: CollectorContext): Promise<{ data: InspectionData; failures: string[] }> {
  const data: InspectionData = {};
  const failures: string[] = [];
  for (const name of c.names) {
    const collector = COLLECTORS[name];
    if (!collector) {
      failures.push(`collector ${name} is not supported by this agent (known: ${Object.keys(COLLECTORS).join(', ')})`);
      continue;
    }
    try {
      await collector(data, c);
    } catch (err) {
      failures.push(`collector ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { data, failures };
}

