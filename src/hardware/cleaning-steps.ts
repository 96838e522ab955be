import type { StepDefinition } from '../steps/types.ts';
import { eraseSteps } from './erase/steps.ts';
import { pstoreStep } from './pstore.ts';
import { uefiNvramStep } from './uefi-nvram.ts';

/** The GenericHardwareManager's cleaning steps (spec §8.4, §11): erase, pstore, UEFI NVRAM. */
export const cleaningSteps: StepDefinition[] = [...eraseSteps, pstoreStep, uefiNvramStep];
