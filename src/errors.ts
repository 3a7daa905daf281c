/**
 * The errors whose message is meant for the caller. Every edge answers them the same way: the status, the message
 * as `{"error": ...}`, and `Retry-After` when the caller is told to come back later.
 */

/** An error whose message is meant for the user, with the HTTP status that carries it. */
export class PublicError extends Error {
  /** `retryAfter`: whole seconds a refused client should wait (sent as Retry-After with its 429). */
  constructor(readonly status: number, message: string, readonly retryAfter?: number) {
    super(message);
  }
}
