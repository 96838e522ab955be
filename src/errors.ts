/**
 * Agent errors with IPA's wire shape (spec §6.3, §6.4): a command error serializes as
 * `{type, code, message, details}` and an HTTP error body carries `faultstring` =
 * "<message>: <details>". `type` is the IPA class name, because Ironic and operators match
 * on it; `message` is the fixed summary of the class, `details` the specific text.
 */
export class AgentError extends Error {
  readonly type: string;
  readonly code: number;
  readonly summary: string;
  readonly details: string;
  /**
   * Raise over HTTP even from a sync command. Ironic's agent_client reads failures of sync
   * commands only from the HTTP status; a FAILED result with 200 is taken as success and ends
   * in an unrelated TypeError (e.g. iterating a missing `deploy_steps`).
   */
  overHttp = false;

  constructor(type: string, code: number, summary: string, details: string) {
    super(`${summary}: ${details}`);
    this.name = type;
    this.type = type;
    this.code = code;
    this.summary = summary;
    this.details = details;
  }

  toJSON(): CommandError {
    return { type: this.type, code: this.code, message: this.summary, details: this.details };
  }
}

export interface CommandError {
  type: string;
  code: number;
  message: string;
  details: string;
}

function kind(type: string, code: number, summary: string) {
  return (details: string) => new AgentError(type, code, summary, details);
}

// Request and dispatch errors (spec §6.4).
export const invalidContent = kind('InvalidContentError', 400, 'Invalid request body');
export const invalidCommand = kind('InvalidCommandError', 400, 'Invalid command');
export const invalidCommandParams = kind('InvalidCommandParamsError', 400, 'Invalid command parameters');
export const notFound = kind('RequestedObjectNotFoundError', 404, 'Not found');
export const agentIsBusy = (runningCommand: string) =>
  new AgentError('AgentIsBusy', 409, 'Agent is busy', `executing command ${runningCommand}`);
export const commandExecution = kind('CommandExecutionError', 500, 'Command execution failed');
export const versionMismatch = (current: unknown, used: unknown) =>
  new AgentError(
    'VersionMismatch', 409, 'Hardware managers version mismatch, reload agent with correct version',
    `Current versions: ${JSON.stringify(current)}, versions used by ironic: ${JSON.stringify(used)}`,
  );

// Step and operation errors (spec §8.5, §9, §11).
export const deploymentError = kind('DeploymentError', 500, 'Deploy step failed');
export const cleaningError = kind('CleaningError', 500, 'Clean step failed');
export const servicingError = kind('ServicingError', 500, 'Service step failed');
export const methodNotFound = (method: string) =>
  new AgentError('HardwareManagerMethodNotFound', 500, 'No HardwareManager found to handle method', `Could not find method: ${method}`);
export const deviceNotFound = kind('DeviceNotFound', 404, 'Error finding the disk or partition device to deploy the image onto');
export const protectedDevice = kind('ProtectedDeviceError', 500, 'Clean step failed');
export const blockDeviceError = kind('BlockDeviceError', 500, 'Block device caused unknown error');
export const hardwareManagerConfigurationError = kind('HardwareManagerConfigurationError', 500, 'Hardware manager configuration error');
export const blockDeviceEraseError = kind('BlockDeviceEraseError', 500, 'Error erasing block device');
export const softwareRaidError = kind('SoftwareRAIDError', 500, 'Software RAID caused unknown error');
export const incompatibleHardwareMethod = kind('IncompatibleHardwareMethodError', 500, 'HardwareManager method is not compatible with hardware');
export const inspectionError = kind('InspectionError', 500, 'Failure in inspection');
export const systemRebootError = kind('SystemRebootError', 500, 'Error rebooting system');

/** Any thrown value as the error object of a FAILED command result (spec §6.3, §14.2). */
export function toCommandError(err: unknown): CommandError {
  if (err instanceof AgentError) return err.toJSON();
  return commandExecution(err instanceof Error ? err.message : String(err)).toJSON();
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
