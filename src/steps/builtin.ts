import { SupportLevel, type StepDefinition, type StepProvider } from './types.ts';

/**
 * The agent's own steps, offered as IPA's GenericHardwareManager offers its steps (spec §8.4),
 * under the same names so that deploy templates written for IPA keep working.
 */
export function genericProvider(steps: StepDefinition[] = []): StepProvider {
  return {
    displayName: 'GenericHardwareManager',
    name: 'generic_hardware_manager',
    version: '1.2',
    supportLevel: SupportLevel.GENERIC,
    steps,
  };
}
