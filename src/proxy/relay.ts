/**
 * The data path of a relayed scheduler connection, once the client's ClientHello is classified and the
 * scheduler is connected. Two paths do the same job: `splice` (the native addon, bytes stay in the kernel)
 * and `js` (Node streams). The setting `relay` chooses; `auto` takes splice wherever the addon loads.
 */
import type net from "node:net";
import { jsRelay } from "./js-relay.js";
import { loadSplice } from "./splice-relay.js";

/** The setting `relay` (its choices are in src/config/settings.ts). */
export type RelayMode = "auto" | "splice" | "js";

/** A running relay. */
export interface Relay {
  /** Ends both directions at once and closes both sockets (no error is reported). Idempotent. */
  stop(): void;
}

export interface RelayPath {
  readonly name: "splice" | "js";
  /**
   * Moves bytes both ways until both directions have ended (each end of stream is passed on as a FIN, so a
   * half-closed direction keeps the other open) or either side fails. `head` (the bytes the listener already
   * read from the client) goes upstream first. Both sockets are destroyed at the end, which emits their
   * "close"; `onError` is told once, before that, when a side failed.
   */
  start(client: net.Socket, upstream: net.Socket, head: Buffer, onError: (err: Error) => void): Relay;
}

/** The path for a mode, and a line saying why (for the start-up log). `splice` without the addon throws. */
export function selectRelay(mode: RelayMode): { path: RelayPath; why: string } {
  if (mode === "js") return { path: jsRelay, why: "relay=js" };
  const splice = loadSplice();
  if (splice.path) return { path: splice.path, why: `relay=${mode}: ${splice.why}` };
  if (mode === "splice") throw new Error(`relay=splice, but the native relay is unavailable: ${splice.why}`);
  return { path: jsRelay, why: `relay=auto, native relay unavailable: ${splice.why}` };
}
