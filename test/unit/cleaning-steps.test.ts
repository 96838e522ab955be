import { describe, expect, test } from 'vitest';
import type { AgentContext } from '../../src/agent-context.ts';
import { cleaningSteps } from '../../src/hardware/cleaning-steps.ts';
import { genericProvider } from '../../src/steps/builtin.ts';
import { StepRegistry } from '../../src/steps/registry.ts';

const ctx = {} as AgentContext;

describe('the GenericHardwareManager\'s cleaning steps (spec §8.4)', () => {
  const registry = new StepRegistry([genericProvider([...cleaningSteps])]);

  test('clean steps: IPA\'s names, priorities, interface, abortable and argsinfo', () => {
    const steps = registry.stepsFor('clean', ctx).GenericHardwareManager!;
    const byName = Object.fromEntries(steps.map((s) => [s.step, s]));
    expect(byName.erase_devices).toEqual({ step: 'erase_devices', priority: 10, interface: 'deploy', reboot_requested: false, abortable: true });
    expect(byName.erase_devices_metadata).toEqual({ step: 'erase_devices_metadata', priority: 99, interface: 'deploy', reboot_requested: false, abortable: true });
    expect(byName.erase_devices_express).toEqual({ step: 'erase_devices_express', priority: 0, interface: 'deploy', reboot_requested: false, abortable: true });
    expect(byName.erase_pstore).toEqual({ step: 'erase_pstore', priority: 0, interface: 'deploy', reboot_requested: false, abortable: true });
    expect(byName.clean_uefi_nvram).toMatchObject({ priority: 0, abortable: true, argsinfo: { match_patterns: { required: false } } });
    expect(byName.clean_uefi_nvram?.argsinfo?.match_patterns?.description).toContain('["^HD\\(", "shim.*\\.efi", "grub.*\\.efi"]');
  });

  test('deploy steps: erase_devices_metadata and clean_uefi_nvram at priority 0; no erase step is a service step', () => {
    const deploy = registry.stepsFor('deploy', ctx).GenericHardwareManager!;
    expect(deploy.map((s) => [s.step, s.priority]).sort()).toEqual([['clean_uefi_nvram', 0], ['erase_devices_metadata', 0]]);
    expect(registry.stepsFor('service', ctx)).toEqual({});
  });
});
