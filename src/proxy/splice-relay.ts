/**
 * The zero-copy relay path: the native addon (native/relay.c, compiled by scripts/native.sh) splices both
 * sockets' bytes through a pipe in the kernel, on a thread of its own. Node keeps owning the sockets: it stops
 * reading them here, and destroys them only once the addon reports that it no longer uses their descriptors.
 */
import { createRequire } from "node:module";
import type net from "node:net";
import { fileURLToPath } from "node:url";
import { jsRelay } from "./js-relay.js";
import type { Relay, RelayPath } from "./relay.js";

/** The addon's functions (see native/relay.c). */
interface SpliceAddon {
  start(fdA: number, fdB: number, headToB: Buffer | null, headToA: Buffer | null,
    done: (error: string | null, aToB: number, bToA: number) => void): object;
  stop(handle: object): void;
}

/** Where scripts/native.sh puts the addon, from src/proxy or dist/proxy alike. */
export const ADDON_PATH = fileURLToPath(new URL("../../native/build/relay.node", import.meta.url));
/** What the addon reports when stop() ended it: not an error of either side. */
const STOPPED = "stopped";

/** The libuv handle behind a net.Socket; Node exposes its descriptor on Linux. */
interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

let loaded: { path?: RelayPath; why: string } | undefined;
let fallbacks = 0;

/** Connections the splice path handed to the JavaScript path because the addon could not start a relay. */
export function spliceFallbacks(): number {
  return fallbacks;
}

/** Loads the addon once; `path` is absent, and `why` says why, where it cannot load. */
export function loadSplice(): { path?: RelayPath; why: string } {
  if (loaded) return loaded;
  if (process.platform !== "linux") return (loaded = { why: `splice(2) is Linux only (this is ${process.platform})` });
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as SpliceAddon;
    loaded = { path: splicePath(addon), why: `native relay loaded from ${ADDON_PATH}` };
  } catch (err) {
    loaded = { why: `cannot load ${ADDON_PATH} (make build compiles it): ${(err as Error).message.split("\n")[0]}` };
  }
  return loaded;
}

function splicePath(addon: SpliceAddon): RelayPath {
  return {
    name: "splice",
    start(client, upstream, head, onError): Relay {
      const fromClient = takeOver(client);
      const fromUpstream = takeOver(upstream);
      const [clientFd, upstreamFd] = [descriptor(client), descriptor(upstream)];
      let running = false;
      let handle: object;
      try {
        if (clientFd === undefined || upstreamFd === undefined) throw new Error("a socket has no file descriptor");
        handle = addon.start(clientFd, upstreamFd, Buffer.concat([head, fromClient]), fromUpstream.length ? fromUpstream : null, (error) => {
          running = false;
          if (error && error !== STOPPED) onError(new Error(error));
          client.destroy();
          upstream.destroy();
        });
        running = true;
      } catch {
        // Out of descriptors for pipes, or of threads: this connection is relayed by Node instead.
        fallbacks++;
        if (fromUpstream.length) client.write(fromUpstream);
        return jsRelay.start(client, upstream, Buffer.concat([head, fromClient]), onError);
      }
      // Node does not read or write these sockets any more; an error it still reports ends the relay.
      const stop = () => {
        if (running) addon.stop(handle);
      };
      const fail = (err: Error) => {
        if (!running) return;
        onError(err);
        stop();
      };
      client.on("error", fail);
      upstream.on("error", fail);
      return { stop };
    },
  };
}

/** Stops Node reading `socket` and answers the bytes it had read but nobody consumed. */
function takeOver(socket: net.Socket): Buffer {
  const chunks: Buffer[] = [];
  // read() may restart reading on the handle; nothing arrives before the readStop below (same tick).
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) chunks.push(chunk);
  const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
  if (handle?.readStop) {
    handle.reading = false;
    handle.readStop();
  }
  return Buffer.concat(chunks);
}

function descriptor(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: TcpHandle })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}
