import { describe, expect, test } from 'vitest';
import { ataSecurityLines } from '../../src/hardware/erase/ata.ts';
import { eraseWholeDevice } from '../../src/hardware/erase/block-erase.ts';
import { chooseSes, parseIdCtrl } from '../../src/hardware/erase/nvme.ts';
import { eraseOptions, type EraseOptions } from '../../src/hardware/erase/options.ts';
import { parseShredProgress, shredArgs } from '../../src/hardware/erase/shred.ts';
import { ToolError, type RunCommand } from '../../src/run.ts';
import { FakeAtaDrive, FakeNvme, fixture } from '../helpers/fake-drives.ts';
import { memoryLogger } from '../helpers/logger.ts';

const defaults = eraseOptions(undefined);
const opts = (o: Partial<EraseOptions> = {}): EraseOptions => ({ ...defaults, ...o });

/** Shred is the real fallback; here it is recorded instead of run, its arguments kept. */
function withShred(run: RunCommand, calls: string[][], fails = false): RunCommand {
  return async (file, args, o) => {
    if (file !== 'shred') return run(file, args, o);
    calls.push([file, ...args]);
    if (fails) throw new ToolError('shred', 'shred exited with 1: Input/output error', 1);
    o?.onStderrLine?.(`shred: ${args.at(-1)}: pass 1/2 (random)...`);
    return '';
  };
}

describe('erase settings from driver_internal_info (spec §11)', () => {
  test('IPA defaults when Ironic sends nothing', () => {
    expect(eraseOptions({ uuid: 'n' })).toEqual({
      iterations: 1, zeroize: true, continueIfSecureEraseFailed: false, enableNvmeSecureErase: true,
      enableAtaSecureErase: true, concurrency: 1, skipReadOnly: false, wipeSpecialFilesystems: true,
    });
  });
  test('the conductor\'s values, and the legacy continue flag only when the new one is absent', () => {
    const o = eraseOptions({ driver_internal_info: { agent_erase_devices_iterations: 3, disk_erasure_concurrency: 4, agent_continue_if_ata_erase_failed: true } });
    expect(o).toMatchObject({ iterations: 3, concurrency: 4, continueIfSecureEraseFailed: true });
    expect(eraseOptions({ driver_internal_info: { agent_continue_if_secure_erase_failed: false, agent_continue_if_ata_erase_failed: true } }).continueIfSecureEraseFailed).toBe(false);
  });
  test('wrong types are InvalidCommandParamsError naming the key', () => {
    expect(() => eraseOptions({ driver_internal_info: { disk_erasure_concurrency: 0 } })).toThrow(/disk_erasure_concurrency/);
    expect(() => eraseOptions({ driver_internal_info: { agent_erase_devices_zeroize: 'maybe' } })).toThrow(/agent_erase_devices_zeroize/);
  });
});

describe('recorded tool outputs', () => {
  test('hdparm -I: the Security section lines, tabs to spaces', () => {
    const drive = new FakeAtaDrive('/dev/sda');
    expect(ataSecurityLines(drive.hdparmI())).toEqual([
      'Master password revision code = 65534', 'supported', 'not enabled', 'not locked', 'not frozen',
      'not expired: security count', 'supported: enhanced erase', '2min for SECURITY ERASE UNIT. 8min for ENHANCED SECURITY ERASE UNIT.',
    ]);
    expect(ataSecurityLines('\n/dev/loop0:\n')).toEqual([]);
  });
  test('nvme id-ctrl: crypto erase when fna bit 2 is set, user-data erase otherwise, error without format', () => {
    expect(chooseSes('/dev/nvme0n1', parseIdCtrl('/dev/nvme0n1', fixture('nvme-id-ctrl-crypto.json')))).toBe(2);
    expect(chooseSes('/dev/nvme0n1', parseIdCtrl('/dev/nvme0n1', fixture('nvme-id-ctrl-user-data.json')))).toBe(1);
    expect(() => chooseSes('/dev/nvme0n1', parseIdCtrl('/dev/nvme0n1', fixture('nvme-id-ctrl-no-format.json')))).toThrow(
      'nvme-cli did not return any supported format modes for device: /dev/nvme0n1',
    );
    expect(() => parseIdCtrl('/dev/nvme0n1', '')).toThrow('nvme-cli did not return any information for device: /dev/nvme0n1');
    expect(() => parseIdCtrl('/dev/nvme0n1', '{"vid": 1}')).toThrow(/unexpected nvme id-ctrl output/);
  });
  test('shred: arguments as IPA builds them, progress lines parsed', () => {
    expect(shredArgs('/dev/sda', { iterations: 1, zeroize: true })).toEqual(['--force', '--zero', '--verbose', '--iterations', '1', '/dev/sda']);
    expect(shredArgs('/dev/sda', { iterations: 3, zeroize: false })).toEqual(['--force', '--verbose', '--iterations', '3', '/dev/sda']);
    expect(parseShredProgress('shred: /dev/sda: pass 1/2 (random)...512MiB/1.0GiB 50%')).toEqual({ pass: 1, passes: 2, percent: 50 });
    expect(parseShredProgress('shred: /dev/sda: pass 2/2 (000000)...')).toEqual({ pass: 2, passes: 2, percent: null });
    expect(parseShredProgress('shred: /dev/sda: fdatasync failed')).toBeUndefined();
  });
});

describe('which erase method (spec §11.1 steps 4-8)', () => {
  const log = memoryLogger().log;

  test('ATA, SEC1: set the NULL password, enhanced erase, verify not enabled', async () => {
    const drive = new FakeAtaDrive('/dev/sda');
    const method = await eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts());
    expect(method).toEqual({ method: 'ata-security-erase-enhanced', expected: 'vendor-defined' });
    const writes = drive.calls.filter((c) => c[0] === 'hdparm' && c[1] !== '-I');
    expect(writes).toEqual([
      ['hdparm', '--user-master', 'u', '--security-set-pass', 'NULL', '/dev/sda'],
      ['hdparm', '--user-master', 'u', '--security-erase-enhanced', 'NULL', '/dev/sda'],
    ]);
    expect(drive.state).toMatchObject({ enabled: false, locked: false });
  });

  test('ATA without enhanced erase: plain security erase, which leaves zeroes', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { enhanced: false });
    expect(await eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).toEqual({ method: 'ata-security-erase', expected: 'zeroes' });
  });

  test('ATA locked by an earlier attempt: unlocked with NULL, then erased', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { enabled: true, locked: true, password: 'NULL' });
    expect((await eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).method).toBe('ata-security-erase-enhanced');
    expect(drive.calls).toContainEqual(['hdparm', '--user-master', 'u', '--security-unlock', 'NULL', '/dev/sda']);
  });

  test('ATA locked with an unknown password: error, no fallback by default; shred with continue', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { enabled: true, locked: true, password: 'secret' });
    await expect(eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).rejects.toMatchObject({
      type: 'BlockDeviceEraseError',
      details: 'Failed to invoke secure erase, fallback to shred is not enabled: Block device /dev/sda already has a security password set',
    });
    // Both unlock passwords were tried first.
    expect(drive.calls.filter((c) => c[3] === '--security-unlock').map((c) => c[4])).toEqual(['NULL', '']);
    const shredCalls: string[][] = [];
    const method = await eraseWholeDevice({ run: withShred(drive.run, shredCalls), log }, '/dev/sda', opts({ continueIfSecureEraseFailed: true }));
    expect(method).toMatchObject({ method: 'shred', expected: 'zeroes', note: expect.stringContaining('already has a security password set') });
    expect(shredCalls).toEqual([['shred', '--force', '--zero', '--verbose', '--iterations', '1', '/dev/sda']]);
  });

  test('ATA frozen: error "frozen", nothing written to the drive', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { frozen: true });
    await expect(eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).rejects.toMatchObject({
      details: expect.stringContaining('Block device /dev/sda is frozen and cannot be erased'),
    });
    expect(drive.calls.every((c) => c[1] === '-I' || c[0] === 'smartctl')).toBe(true);
  });

  test('ATA erase aborted by the drive: unlocked again for the fallback, then error', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { eraseFails: true });
    await expect(eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).rejects.toMatchObject({
      details: expect.stringContaining('Erase failed for device /dev/sda'),
    });
    expect(drive.state.locked).toBe(false);
  });

  test('ATA not applicable: no security support, smartctl unavailable or failing -> shred; smartctl missing is tolerated', async () => {
    for (const [state, smartctl] of [[{ supported: false }, 'ok'], [{}, 'unavailable'], [{}, 'fails']] as const) {
      const drive = new FakeAtaDrive('/dev/sda', state);
      drive.smartctl = smartctl;
      const calls: string[][] = [];
      expect((await eraseWholeDevice({ run: withShred(drive.run, calls), log }, '/dev/sda', opts())).method).toBe('shred');
      expect(drive.state.enabled).toBe(false);
    }
    const drive = new FakeAtaDrive('/dev/sda');
    drive.smartctl = 'missing';
    expect((await eraseWholeDevice({ run: drive.run, log }, '/dev/sda', opts())).method).toBe('ata-security-erase-enhanced');
  });

  test('ATA secure erase disabled by the node: straight to shred, without zero pass when zeroize is off', async () => {
    const drive = new FakeAtaDrive('/dev/sda');
    const calls: string[][] = [];
    const m = await eraseWholeDevice({ run: withShred(drive.run, calls), log }, '/dev/sda', opts({ enableAtaSecureErase: false, zeroize: false, iterations: 2 }));
    expect(m).toMatchObject({ method: 'shred', expected: 'random' });
    expect(calls).toEqual([['shred', '--force', '--verbose', '--iterations', '2', '/dev/sda']]);
    expect(drive.calls).toEqual([]);
  });

  test('hdparm missing: a clear BlockDeviceEraseError', async () => {
    const run: RunCommand = async (file) => {
      throw new ToolError(file, `${file} is not installed (needed for: ${file})`);
    };
    await expect(eraseWholeDevice({ run, log }, '/dev/sda', opts())).rejects.toMatchObject({
      details: 'Failed to invoke secure erase, fallback to shred is not enabled: hdparm is not installed: cannot check ATA security of /dev/sda',
    });
  });

  test('NVMe: crypto format when supported, user-data format otherwise', async () => {
    for (const [file, ses, method] of [['nvme-id-ctrl-crypto.json', '2', 'nvme-format-crypto'], ['nvme-id-ctrl-user-data.json', '1', 'nvme-format-user-data']] as const) {
      const nvme = new FakeNvme('/dev/nvme0n1', fixture(file));
      expect(await eraseWholeDevice({ run: nvme.run, log }, '/dev/nvme0n1', opts())).toEqual({ method, expected: 'vendor-defined' });
      expect(nvme.calls.at(-1)).toEqual(['nvme', 'format', '/dev/nvme0n1', '-s', ses, '-f']);
    }
  });

  test('NVMe without format support or failing format: error, or shred when allowed; disabled: shred', async () => {
    const noFormat = new FakeNvme('/dev/nvme0n1', fixture('nvme-id-ctrl-no-format.json'));
    await expect(eraseWholeDevice({ run: noFormat.run, log }, '/dev/nvme0n1', opts())).rejects.toMatchObject({
      details: 'Failed to invoke secure erase, fallback to shred is not enabled: nvme-cli did not return any supported format modes for device: /dev/nvme0n1',
    });
    const failing = new FakeNvme('/dev/nvme0n1', fixture('nvme-id-ctrl-crypto.json'));
    failing.formatFails = true;
    const calls: string[][] = [];
    expect((await eraseWholeDevice({ run: withShred(failing.run, calls), log }, '/dev/nvme0n1', opts({ continueIfSecureEraseFailed: true }))).method).toBe('shred');
    const disabled = new FakeNvme('/dev/nvme0n1', fixture('nvme-id-ctrl-crypto.json'));
    const m = await eraseWholeDevice({ run: withShred(disabled.run, []), log }, '/dev/nvme0n1', opts({ enableNvmeSecureErase: false }));
    expect(m).toMatchObject({ method: 'shred', note: 'NVMe secure erase disabled by agent_enable_nvme_secure_erase' });
    expect(disabled.calls).toEqual([]);
  });

  test('shred failing: "device is unsupported" with the real reason (IPA hides it, spec §14.8)', async () => {
    const drive = new FakeAtaDrive('/dev/sda', { supported: false });
    await expect(eraseWholeDevice({ run: withShred(drive.run, [], true), log }, '/dev/sda', opts())).rejects.toMatchObject({
      type: 'BlockDeviceEraseError',
      details: 'Unable to erase block device /dev/sda: device is unsupported. shred exited with 1: Input/output error',
    });
  });
});
