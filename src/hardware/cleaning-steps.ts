import type { StepDefinition } from '../steps/types.ts';
import { eraseSteps } from './erase/steps.ts';
import { pstoreStep } from './pstore.ts';
import { raidSteps } from './raid/steps.ts';
import { uefiNvramStep } from './uefi-nvram.ts';

/** The GenericHardwareManager's cleaning steps (spec §8.4, §11): erase, pstore, UEFI NVRAM, software RAID. */
export const cleaningSteps: StepDefinition[] = [...eraseSteps, pstoreStep, uefiNvramStep, ...raidSteps];
