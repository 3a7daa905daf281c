/** The relay path in JavaScript: every chunk passes through a Buffer. The fallback wherever splice is unavailable. */
import type { RelayPath } from "./relay.js";

/** Node streams: pipe() forwards each end as a FIN and honours backpressure. */
export const jsRelay: RelayPath = {
  name: "js",
  start(client, upstream, head, onError) {
    // With allowHalfOpen, each socket is destroyed by autoDestroy only once it has both read and written its
    // end, so a half-closed direction keeps working; an error on either side ends both at once.
    const stop = () => {
      client.destroy();
      upstream.destroy();
    };
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      onError(err);
      stop();
    };
    client.on("error", fail);
    upstream.on("error", fail);
    upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
    return { stop };
  },
};
