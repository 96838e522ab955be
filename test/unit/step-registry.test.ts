import { describe, expect, test } from 'vitest';
import type { AgentContext } from '../../src/agent-context.ts';
import { StepRegistry } from '../../src/steps/registry.ts';
import { SupportLevel, type StepDefinition, type StepProvider } from '../../src/steps/types.ts';

const ctx = {} as AgentContext;

function step(name: string, priority: number): StepDefinition {
  return { step: name, interface: 'deploy', kinds: { clean: { priority } }, run: async () => name };
}

function provider(displayName: string, supportLevel: number, steps: StepDefinition[]): StepProvider {
  return { displayName, name: displayName, version: '1.0', supportLevel, steps };
}

describe('step deduplication (spec §8.3, vectors §12.10)', () => {
  const registry = new StepRegistry([
    provider('ZFakeGenericHardwareManager', SupportLevel.GENERIC, [step('duped_ml', 20), step('duped_gn', 30), step('ZHigherPrio', 100)]),
    provider('AFakeGenericHardwareManager', SupportLevel.GENERIC, [step('duped_ml', 20), step('duped_gn', 30), step('ZHigherPrio', 1)]),
    provider('AFakeMainlineHardwareManager', SupportLevel.MAINLINE, [step('duped_ml', 20)]),
  ]);

  test('the §12.10 result', () => {
    const steps = registry.stepsFor('clean', ctx);
    const names = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, v.map((s) => `${s.step}/${s.priority}`)]));
    expect(names).toEqual({
      AFakeGenericHardwareManager: ['duped_gn/30'],
      ZFakeGenericHardwareManager: ['ZHigherPrio/100'],
      AFakeMainlineHardwareManager: ['duped_ml/20'],
    });
    expect(registry.versions()).toEqual({
      ZFakeGenericHardwareManager: '1.0', AFakeGenericHardwareManager: '1.0', AFakeMainlineHardwareManager: '1.0',
    });
  });

  test('the step that runs is the one reported', () => {
    expect(registry.find('clean', 'ZHigherPrio', ctx)?.provider.displayName).toBe('ZFakeGenericHardwareManager');
    expect(registry.find('clean', 'duped_ml', ctx)?.provider.displayName).toBe('AFakeMainlineHardwareManager');
    expect(registry.find('deploy', 'duped_ml', ctx)).toBeUndefined();
  });

  test('step data carries IPA keys; abortable only for clean and service steps', () => {
    const r = new StepRegistry([
      provider('P', 1, [
        {
          step: 'erase', interface: 'deploy', reboot_requested: false, argsinfo: { x: { description: 'x', required: true } },
          kinds: { clean: { priority: 10, abortable: true }, deploy: { priority: 0 } }, run: async () => null,
        },
      ]),
    ]);
    expect(r.stepsFor('clean', ctx)).toEqual({
      P: [{ step: 'erase', priority: 10, interface: 'deploy', reboot_requested: false, abortable: true, argsinfo: { x: { description: 'x', required: true } } }],
    });
    expect(r.stepsFor('deploy', ctx).P![0]).not.toHaveProperty('abortable');
    expect(r.stepsFor('service', ctx)).toEqual({});
  });

  test('a provider registered twice is refused', () => {
    expect(() => new StepRegistry([provider('P', 1, []), provider('P', 1, [])])).toThrow(/registered twice/);
  });
});
