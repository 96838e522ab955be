import { AgentError } from '../errors.ts';

/**
 * IPA's image errors (ironic_python_agent/errors.py), same class names, codes, summaries and
 * detail texts, because Ironic shows `details` to the operator as last_error (spec §6.3).
 * `retryable` says whether the whole transfer may be tried again (spec §9.4).
 */
export class ImageError extends AgentError {
  readonly retryable: boolean;

  constructor(type: string, code: number, summary: string, details: string, retryable: boolean) {
    super(type, code, summary, details);
    this.retryable = retryable;
  }
}

/** A download that failed and may succeed when tried again (connection error, 5xx, stall). */
export const imageDownloadError = (imageId: string, msg: string) =>
  new ImageError('ImageDownloadError', 500, 'Error downloading image', `Download of image ${imageId} failed: ${msg}`, true);

/** A download that will fail again: a 4xx answer, bad credentials configuration (spec §14.3). */
export const imageDownloadFatalError = (imageId: string, msg: string) =>
  new ImageError('ImageDownloadFatalError', 500, 'Error downloading image', `Download of image ${imageId} failed: ${msg}`, false);

/** The target ran out of space: retrying cannot help (IPA: ImageDownloadOutofSpaceError). */
export const imageDownloadOutOfSpaceError = (imageId: string, msg: string) =>
  new ImageError('ImageDownloadOutofSpaceError', 500, 'Error downloading image', `Download of image ${imageId} failed: ${msg}`, false);

/** ipa-image-download-max-duration exceeded; fatal, as documented (spec §14.4). */
export const imageDownloadTimeoutError = (imageId: string, msg: string) =>
  new ImageError('ImageDownloadTimeoutError', 408, 'Image download timeout', `Download of image ${imageId} failed: ${msg}`, false);

export const imageChecksumError = (imageId: string, location: string, expected: string, actual: string) =>
  new ImageError(
    'ImageChecksumError', 500, 'Error verifying image checksum',
    `Image failed to verify against checksum. location: ${location}; image ID: ${imageId}; image checksum: ${expected}; verification checksum: ${actual}`,
    true,
  );

/** A tool or the device failed while writing (IPA: ImageWriteError). */
export const imageWriteError = (device: string, exitCode: number | string, stdout: string, stderr: string) =>
  new ImageError(
    'ImageWriteError', 500, 'Error writing image to device',
    `Writing image to device ${device} failed with exit code ${exitCode}. stdout: ${stdout}. stderr: ${stderr}`,
    false,
  );

/** The image failed inspection: wrong format, unsafe qcow2, not permitted (spec §9.5 B). */
export const invalidImage = (details: string) =>
  new ImageError('InvalidImage', 500, 'The provided image is not valid for use', details, false);

/** IPA raises a bare RESTError when no checksum algorithm can be chosen (spec §9.3). */
export const restError = (details: string) => new ImageError('RESTError', 500, 'An error occurred', details, false);

/** Thrown by a source whose server ignored a Range request: the transfer starts over from byte 0. */
export class RestartTransfer extends Error {
  override name = 'RestartTransfer';
}
