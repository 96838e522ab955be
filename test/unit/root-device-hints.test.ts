import { describe, expect, test } from 'vitest';
import type { BlockDevice } from '../../src/hardware/block-devices.ts';
import { pickRootDevice, withoutSkipped } from '../../src/hardware/root-device.ts';
import {
  extractOperator,
  findDevicesByHints,
  normalizeExpression,
  parseRootDeviceHints,
  type HintTarget,
} from '../../src/hardware/root-device-hints.ts';

describe('hint parsing and normalisation (spec §12.1)', () => {
  test('every hint, normalised', () => {
    expect(
      parseRootDeviceHints({
        wwn: '123456', model: 'FOO model', size: 12345, serial: 'foo-serial', vendor: 'foo VENDOR with space',
        name: '/dev/sda', wwn_with_extension: '123456111', wwn_vendor_extension: '111', rotational: true,
        hctl: '1:0:0:0', by_path: '/dev/disk/by-path/1:0:0:0',
      }),
    ).toEqual({
      wwn: 's== 123456', model: 's== foo%20model', size: '== 12345', serial: 's== foo-serial', vendor: 's== foo%20vendor%20with%20space',
      name: 's== /dev/sda', wwn_with_extension: 's== 123456111', wwn_vendor_extension: 's== 111', rotational: true,
      hctl: 's== 1%3A0%3A0%3A0', by_path: 's== /dev/disk/by-path/1%3A0%3A0%3A0',
    });
  });

  test.each([
    [{ size: '>= 12345', serial: 's!= foo-serial', name: '<or> /dev/sda <or> /dev/sdb' }, { size: '>= 12345', serial: 's!= foo-serial', name: '<or> /dev/sda <or> /dev/sdb' }],
    [{ model: 's== foo MODEL' }, { model: 's== foo%20model' }],
    [{ size: 12345 }, { size: '== 12345' }],
    [{ size: '12345' }, { size: '== 12345' }],
    [{ size: '<or> 123 <or> 456 <or> 789' }, { size: '<or> 123 <or> 456 <or> 789' }],
    [{ model: '<or> foo <or> foo bar <or> bar' }, { model: '<or> foo <or> foo%20bar <or> bar' }],
  ])('%j', (input, output) => {
    expect(parseRootDeviceHints(input)).toEqual(output);
  });

  test.each([true, 'true', 'on', 'y', 'yes'])('rotational %j is true', (v) => {
    expect(parseRootDeviceHints({ rotational: v })).toEqual({ rotational: true });
  });
  test.each([false, 'false', 'off', 'n', 'no'])('rotational %j is false', (v) => {
    expect(parseRootDeviceHints({ rotational: v })).toEqual({ rotational: false });
  });

  test.each([
    [{ size: 'not-int' }, /is not an integer value/],
    [{ size: -123 }, /should be a positive integer/],
    [{ size: 0 }, /should be a positive integer/],
    [{ size: '<or> 123 <or> non-int <or> 789' }, /is not an integer value/],
    [{ size: '10GB' }, /is not an integer value/],
    [{ rotational: 'not-bool' }, /is not a Boolean value/],
    [{ wwn: 123 }, /is not a string value/],
    [{ 'non-existent': 'foo' }, /hints "non-existent" are not supported/],
    [{ model: '' }, /expression is empty/],
  ])('invalid: %j', (hints, message) => {
    expect(() => parseRootDeviceHints(hints)).toThrow(message);
  });

  test('no hints', () => {
    expect(parseRootDeviceHints({})).toBeUndefined();
    expect(parseRootDeviceHints(undefined)).toBeUndefined();
  });

  test.each([
    ['<in> foo <in> foo bar <in> bar', '<in> foo <in> foo%20bar <in> bar'],
    ['s== test string with space', 's== test%20string%20with%20space'],
    ['s!= SpongeBob', 's!= spongebob'],
    ['no operators', 'no%20operators'],
    ['NoSpace', 'nospace'],
  ])('normalise %j', (input, output) => {
    expect(normalizeExpression(input, 'x')).toBe(output);
  });

  test.each([
    ['>= 123', '>=', ['123']],
    ['<or> 123 <or> 456 <or> 789', '<or>', ['123', '456', '789']],
    ['<or> foo <or> foo bar <or> bar', '<or>', ['foo', 'foo bar', 'bar']],
    ['123', '', ['123']],
    [123, '', ['123']],
  ])('operator and values of %j', (input, op, values) => {
    expect(extractOperator(input, 'x')).toEqual({ op, values });
  });
});

const GiB = 2 ** 30;
const devices: HintTarget[] = [
  { name: '/dev/sda', size: 60 * GiB, model: 'ok model', serial: 'fakeserial', wwn: 'wwn_1' },
  { name: '/dev/sdb', size: 120 * GiB, model: 'big model', serial: ['veryfakeserial', 'alsoveryfakeserial'], rotational: 'yes' as unknown as boolean, wwn: ['wwn_2', 'wwn_2_ext'] },
  { name: '/dev/sdc', size: 10 * GiB, model: 'small model', serial: 'veryveryfakeserial', rotational: false, wwn: 'wwn_3' },
];
const first = (hints: Record<string, unknown>) => findDevicesByHints(devices, parseRootDeviceHints(hints)!)[0]?.name ?? null;
const all = (hints: Record<string, unknown>) => findDevicesByHints(devices, parseRootDeviceHints(hints)!).map((d) => d.name);

describe('hint matching (spec §12.2)', () => {
  test.each([
    [{ size: '>= 70' }, '/dev/sdb'],
    [{ rotational: false }, '/dev/sdc'],
    [{ size: '>=100', rotational: true }, '/dev/sdb'],
    [{ size: '>= 50', model: 's==big model', serial: 's==veryfakeserial' }, '/dev/sdb'],
    [{ size: '<= 20', model: '<or> model 5 <or> foomodel <or> small model <or>', serial: 's== veryveryfakeserial' }, '/dev/sdc'],
    [{ rotational: false, model: '<in> small' }, '/dev/sdc'],
    [{ wwn: 'wwn_2_ext' }, '/dev/sdb'],
    [{ size: '120', model: 'big model', serial: 'veryfakeserial' }, '/dev/sdb'],
    [{ size: '>=50', model: 's==foo' }, null],
  ])('%j -> %s', (hints, match) => {
    expect(first(hints)).toBe(match);
  });

  test('an empty attribute skips the device', () => {
    expect(findDevicesByHints([{ name: '/dev/sda', model: ' ' }], parseRootDeviceHints({ model: 'foo' })!)).toEqual([]);
  });

  test.each([
    [{ size: '>= 10' }, ['/dev/sda', '/dev/sdb', '/dev/sdc']],
    [{ size: '>= 100500' }, []],
    [{ name: 's== /dev/sda' }, ['/dev/sda']],
    [{ serial: 's== fakeserial' }, ['/dev/sda']],
    [{ wwn: 's== wwn_1' }, ['/dev/sda']],
    [{ serial: 's== alsoveryfakeserial' }, ['/dev/sdb']],
    [{ wwn: 's== wwn_2' }, ['/dev/sdb']],
  ])('find all %j', (hints, names) => {
    expect(all(hints)).toEqual(names);
  });
});

function disk(name: string, size: number): BlockDevice {
  return {
    name, size, model: null, rotational: false, wwn: null, serial: null, vendor: null, wwn_with_extension: null,
    wwn_vendor_extension: null, hctl: null, by_path: null, logical_sectors: 512, physical_sectors: 512, tran: null, type: 'disk',
  };
}

describe('default root disk (spec §12.3) and errors', () => {
  test('the smallest disk of at least 4 GiB', () => {
    expect(pickRootDevice([disk('/dev/sdc', 4294967295), disk('/dev/sda', 21474836480), disk('/dev/sdb', 10737418240), disk('/dev/sdd', 21474836480)], undefined).name).toBe('/dev/sdb');
  });
  test('ties are broken by name', () => {
    expect(pickRootDevice(['/dev/sdc', '/dev/sdb', '/dev/sda', '/dev/sdd'].map((n) => disk(n, 10737418240)), {}).name).toBe('/dev/sda');
  });
  test('all too small: DeviceNotFound', () => {
    expect(() => pickRootDevice([disk('/dev/sda', 4294967295), disk('/dev/sdb', 1)], undefined)).toThrow(
      'Error finding the disk or partition device to deploy the image onto: No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than 4294967296B.',
    );
  });
  test('no match and invalid hints: DeviceNotFound', () => {
    expect(() => pickRootDevice([disk('/dev/sda', 10 * GiB)], { name: '/dev/sdx' })).toThrow(/No suitable device was found for deployment using these hints \{"name":"\/dev\/sdx"\}/);
    expect(() => pickRootDevice([disk('/dev/sda', 10 * GiB)], { size: 'big' })).toThrow(/DeviceNotFound|not an integer/);
  });
  test('skip_block_devices removes matching disks', () => {
    const node = { uuid: 'n', properties: { skip_block_devices: [{ name: '/dev/sda' }, { volume_name: 'keep' }] } };
    expect(withoutSkipped([disk('/dev/sda', 8 * GiB), disk('/dev/sdb', 9 * GiB)], node).map((d) => d.name)).toEqual(['/dev/sdb']);
  });
});
