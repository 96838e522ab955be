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

  test('deploy steps: erase_devices_metadata, clean_uefi_nvram and apply_configuration at priority 0', () => {
    const deploy = registry.stepsFor('deploy', ctx).GenericHardwareManager!;
    expect(deploy.map((s) => [s.step, s.priority]).sort()).toEqual([['apply_configuration', 0], ['clean_uefi_nvram', 0], ['erase_devices_metadata', 0]]);
  });

  test('software RAID: delete/create_configuration are raid clean steps, apply_configuration a raid deploy step with IPA\'s argsinfo (spec §11.5)', () => {
    const clean = Object.fromEntries(registry.stepsFor('clean', ctx).GenericHardwareManager!.map((s) => [s.step, s]));
    for (const step of ['delete_configuration', 'create_configuration']) {
      expect(clean[step]).toEqual({ step, priority: 0, interface: 'raid', reboot_requested: false, abortable: true });
    }
    const apply = registry.stepsFor('deploy', ctx).GenericHardwareManager!.find((s) => s.step === 'apply_configuration');
    expect(apply).toEqual({
      step: 'apply_configuration', priority: 0, interface: 'raid', reboot_requested: false,
      argsinfo: {
        raid_config: { description: 'The RAID configuration to apply.', required: true },
        delete_existing: {
          description: "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'.",
          required: false,
        },
      },
    });
  });

  test('service steps: only the RAID steps, as IPA offers them; no erase step', () => {
    const service = registry.stepsFor('service', ctx).GenericHardwareManager!;
    expect(service.map((s) => [s.step, s.interface, s.priority]).sort()).toEqual([
      ['apply_configuration', 'raid', 0], ['create_configuration', 'raid', 0], ['delete_configuration', 'raid', 0],
    ]);
  });
});
