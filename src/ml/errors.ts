/** Why an ml/ operation failed. Expected failures are values of this type, never plain Errors. */
export type MlErrorCode =
  /** An argument has the wrong length, shape, range or kind; the message names the argument and function. */
  | 'invalid-argument'
  /** A flat vector (weights, gradient, optimizer state) does not fit the model or optimizer it is given to. */
  | 'shape-mismatch'
  /** No tfjs backend could be initialised (every candidate failed or timed out). */
  | 'no-backend'
  /** A backend initialisation, probe or device operation did not finish within its timeout. */
  | 'timeout';

/**
 * A typed failure of an ml/ function. Check `code`, not the message. The message names the function
 * and the argument, and says what to do (tfjs's `convertToTensor(x, 'x', 'add')` style).
 */
export class MlError extends Error {
  override readonly name = 'MlError';
  constructor(
    readonly code: MlErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}
