/** Why a collective (or a link) failed. Expected failures are values of this type, never plain Errors. */
export type RingErrorCode =
  /** The caller's AbortSignal fired. */
  | 'aborted'
  /** The collective did not finish within its timeout. */
  | 'timeout'
  /** A peer the collective depends on is gone (heartbeat silence, closed channel, coordinator). */
  | 'peer-down'
  /** The membership view changed; the collective belongs to an old epoch. */
  | 'view-changed'
  /** A neighbour sent something that does not fit the protocol (bad frame, wrong chunk, desync). */
  | 'protocol'
  /** The communicator or transport was closed locally. */
  | 'closed';

/** A typed, expected failure of a collective or transport operation. Check `code`, not the message. */
export class RingError extends Error {
  override readonly name = 'RingError';
  constructor(
    readonly code: RingErrorCode,
    message: string,
    /** The peer involved, when one is. */
    readonly peer?: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Turns an AbortSignal's reason into a RingError (a plain abort becomes code 'aborted'). */
export function abortReason(signal: AbortSignal): RingError {
  const r: unknown = signal.reason;
  return r instanceof RingError ? r : new RingError('aborted', r instanceof Error ? r.message : 'aborted by caller');
}
