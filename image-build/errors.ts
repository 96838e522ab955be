/** A build failure with a message for the operator; build.ts prints it without a stack. */
export class BuildError extends Error {
  override name = 'BuildError';
}
