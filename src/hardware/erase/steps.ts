import type { AgentContext } from '../../agent-context.ts';
import { blockDeviceEraseError, errorMessage } from '../../errors.ts';
import type { NodeDict, StepCall, StepContext, StepDefinition } from '../../steps/types.ts';
import { deviceSize, isReadOnly } from '../partitions.ts';
import { eraseWholeDevice } from './block-erase.ts';
import { eraseCandidates, skipReason, withPartitions, type EraseTarget } from './devices.ts';
import { destroyMetadata } from './metadata.ts';
import { isNvme, nvmeFormat } from './nvme.ts';
import { eraseOptions, type EraseOptions } from './options.ts';
import { readBack, sampleRanges } from './readback.ts';
import { round, type DeviceReport } from './report.ts';
import { inPool, raiseFailures } from './run-devices.ts';
import { checkSpecialFilesystems } from './safety.ts';

/** Random 64 KiB blocks read back after a whole-device erase, besides both ends. */
const READ_BACK_RANDOM_SAMPLES = 16;

/**
 * Every check that must pass before any device is touched: the disk guard (mounted, swap,
 * holders, allowlist) and the shared-filesystem guard of spec §11.4. All devices are checked
 * first, so one refused device leaves every device untouched.
 */
async function checkAll(ctx: AgentContext, devices: readonly string[], opts: EraseOptions): Promise<void> {
  for (const device of devices) {
    await ctx.diskGuard.check(device);
    if (ctx.config.guardSpecialFilesystems && opts.wipeSpecialFilesystems) await checkSpecialFilesystems(ctx.run, device);
  }
}

/**
 * The guard again, right before the device is written, plus its size: a disk that vanished
 * since the listing (hot-unplugged, detached loop) reads as 0 bytes in sysfs, or not at all.
 */
async function stillThere(ctx: AgentContext, device: string): Promise<number> {
  await ctx.diskGuard.check(device);
  const size = await deviceSize(device).catch(() => 0);
  if (size === 0) throw blockDeviceEraseError(`${device} vanished between listing and erasing (the kernel reports no size for it)`);
  return size;
}

function skipped(device: string, size: number, note: string): DeviceReport {
  return { device, method: 'skipped', note, bytes_covered: 0, size, duration_s: 0 };
}

/** erase_devices (spec §11.1): every disk, in parallel, secure erase or shred, then read back. */
async function eraseDevices(call: StepCall, ctx: StepContext): Promise<Record<string, DeviceReport>> {
  const opts = eraseOptions(call.node);
  const disks = await eraseCandidates(ctx, call.node);
  if (disks.length === 0) return {};
  await checkAll(ctx, disks.map((d) => d.name), opts);
  ctx.log.info({ devices: disks.map((d) => d.name), concurrency: opts.concurrency }, 'erasing devices');
  const outcomes = await inPool(disks, opts.concurrency, async (disk) => {
    const started = performance.now();
    const reason = await skipReason(disk.name);
    if (reason) {
      ctx.log.info({ device: disk.name, reason }, 'not erasing device');
      return skipped(disk.name, disk.size, reason);
    }
    if (await isReadOnly(disk.name)) {
      if (opts.skipReadOnly) return skipped(disk.name, disk.size, 'read-only device (agent_erase_skip_read_only)');
      throw blockDeviceEraseError(
        `Failed to invoke erase of device ${disk.name} as the device is flagged read-only, and the conductor has not signaled this is a permitted case.`,
      );
    }
    await stillThere(ctx, disk.name);
    ctx.log.info({ device: disk.name, size: disk.size }, 'erasing device');
    const done = await eraseWholeDevice(ctx, disk.name, opts);
    const size = await deviceSize(disk.name);
    const sample = await readBack(ctx.run, disk.name, sampleRanges(size, READ_BACK_RANDOM_SAMPLES), done.expected);
    if (done.expected === 'zeroes' && !sample.all_zero) {
      throw blockDeviceEraseError(`${done.method} reported success on ${disk.name} but byte ${sample.first_nonzero_offset} still reads non-zero`);
    }
    const report: DeviceReport = {
      device: disk.name,
      method: done.method,
      ...(done.note ? { note: done.note } : {}),
      bytes_covered: size,
      size,
      duration_s: round((performance.now() - started) / 1000),
      read_back: sample,
    };
    ctx.log.info({ report }, 'device erased');
    return report;
  });
  return collect(disks.map((d) => d.name), outcomes, 'Failed to erase the device(s)');
}

function collect(devices: readonly string[], outcomes: PromiseSettledResult<DeviceReport | DeviceReport[]>[], summary: string): Record<string, DeviceReport> {
  const result: Record<string, DeviceReport> = {};
  const failures: { device: string; error: unknown }[] = [];
  outcomes.forEach((o, i) => {
    if (o.status === 'rejected') failures.push({ device: devices[i]!, error: o.reason });
    else for (const r of Array.isArray(o.value) ? o.value : [o.value]) result[r.device] = r;
  });
  raiseFailures(failures, summary);
  return result;
}

/**
 * The devices of the metadata and express erases (spec §11.2): disks and partitions, minus
 * virtual media, RAID members and read-only devices (skipped, reported), grouped per disk
 * with partitions first, so disks run in parallel and a partition is wiped before its table.
 */
async function metadataTargets(ctx: AgentContext, node: NodeDict | undefined): Promise<{ groups: EraseTarget[][]; skippedReports: DeviceReport[] }> {
  const disks = await eraseCandidates(ctx, node);
  const groups = new Map<string, EraseTarget[]>();
  const skippedReports: DeviceReport[] = [];
  for (const target of await withPartitions(disks)) {
    const reason = (await skipReason(target.name)) ?? ((await isReadOnly(target.name)) ? 'read-only device' : undefined);
    if (reason) {
      ctx.log.info({ device: target.name, reason }, 'not erasing device');
      skippedReports.push(skipped(target.name, await deviceSize(target.name).catch(() => 0), reason));
      continue;
    }
    const group = groups.get(target.disk) ?? [];
    group.push(target);
    groups.set(target.disk, group);
  }
  return { groups: [...groups.values()], skippedReports };
}

async function wipeGroup(ctx: StepContext, group: EraseTarget[]): Promise<DeviceReport[]> {
  const reports: DeviceReport[] = [];
  for (const target of group) {
    await stillThere(ctx, target.name);
    reports.push(await destroyMetadata(target.name, { run: ctx.run, log: ctx.log, sleep: (s) => new Promise((r) => setTimeout(r, s * 1000)) }));
  }
  return reports;
}

/** erase_devices_metadata (spec §11.2). */
async function eraseDevicesMetadata(call: StepCall, ctx: StepContext): Promise<Record<string, DeviceReport>> {
  const opts = eraseOptions(call.node);
  const { groups, skippedReports } = await metadataTargets(ctx, call.node);
  await checkAll(ctx, groups.flat().map((t) => t.name), opts);
  const outcomes = await inPool(groups, opts.concurrency, (group) => wipeGroup(ctx, group));
  const result = collect(groups.map((g) => g.at(-1)!.disk), outcomes, 'Failed to erase the metadata on the device(s)');
  for (const r of skippedReports) result[r.device] = r;
  return result;
}

/**
 * erase_devices_express (spec §11.3): NVMe secure format where possible (the whole
 * namespace, so never per partition as IPA would), otherwise the metadata wipe.
 */
async function eraseDevicesExpress(call: StepCall, ctx: StepContext): Promise<Record<string, DeviceReport>> {
  const opts = eraseOptions(call.node);
  const { groups, skippedReports } = await metadataTargets(ctx, call.node);
  await checkAll(ctx, groups.flat().map((t) => t.name), opts);
  const outcomes = await inPool(groups, opts.concurrency, async (group) => {
    const disk = group.at(-1)!;
    if (!disk.partition && isNvme(disk.name) && opts.enableNvmeSecureErase) {
      const started = performance.now();
      try {
        const size = await stillThere(ctx, disk.name);
        const ses = await nvmeFormat(ctx.run, disk.name);
        return [{
          device: disk.name,
          method: ses === 2 ? 'nvme-format-crypto' : 'nvme-format-user-data',
          bytes_covered: size,
          size,
          duration_s: round((performance.now() - started) / 1000),
          read_back: await readBack(ctx.run, disk.name, sampleRanges(size, READ_BACK_RANDOM_SAMPLES), 'vendor-defined'),
        }];
      } catch (err) {
        ctx.log.error({ device: disk.name, err: errorMessage(err) }, 'NVMe secure erase failed, falling back to the metadata wipe');
      }
    }
    return wipeGroup(ctx, group);
  });
  const result = collect(groups.map((g) => g.at(-1)!.disk), outcomes, 'Failed to conduct an express erase on the device(s)');
  for (const r of skippedReports) result[r.device] = r;
  return result;
}

/** The erase steps of IPA's GenericHardwareManager, same names, priorities and flags (spec §8.4). */
export const eraseSteps: StepDefinition[] = [
  { step: 'erase_devices', interface: 'deploy', kinds: { clean: { priority: 10, abortable: true } }, run: eraseDevices },
  {
    step: 'erase_devices_metadata',
    interface: 'deploy',
    kinds: { clean: { priority: 99, abortable: true }, deploy: { priority: 0 } },
    run: eraseDevicesMetadata,
  },
  { step: 'erase_devices_express', interface: 'deploy', kinds: { clean: { priority: 0, abortable: true } }, run: eraseDevicesExpress },
];
