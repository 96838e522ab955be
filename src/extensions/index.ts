import { bootcCommands } from '../bootc/step.ts';
import { bootloaderInstallers } from '../bootloader/index.ts';
import { imageExtension } from './image.ts';
import { logExtension } from './log.ts';
import { pollExtension } from './poll.ts';
import { rescueExtension } from './rescue.ts';
import { standbyImageCommands } from './standby-image.ts';
import { standbyExtension } from './standby.ts';
import { stepsExtension } from './steps.ts';
import { systemExtension } from './system.ts';
import type { Extension } from './types.ts';

/** Every extension the agent serves, by wire name (spec §7). */
export function builtinExtensions(): Extension[] {
  return [
    standbyExtension({ ...standbyImageCommands(), ...bootcCommands() }),
    stepsExtension('deploy'),
    stepsExtension('clean'),
    stepsExtension('service'),
    systemExtension,
    logExtension,
    pollExtension,
    rescueExtension,
    imageExtension(bootloaderInstallers()),
  ];
}
