/**
 * The live list of clusters from the gateway's event stream (ui/events). While the tab is hidden the stream is
 * closed, so a background tab costs the gateway nothing; it reopens (and gets the current state) when shown.
 */
import { useEffect, useState } from "preact/hooks";
import { checkSession, type UiCluster } from "./api.js";

/** After the stream was refused (not merely cut, which the browser retries by itself), try again this much later. */
const REOPEN_MS = 5_000;

export interface LiveState {
  clusters: UiCluster[] | null;
  /** Set while the stream is down (the browser retries by itself). */
  error: string | null;
  paused: boolean;
}

/** Subscribes to the user's clusters (scope "all": every user's, for admins). */
export function useLiveClusters(scope: "mine" | "all"): LiveState {
  const [state, setState] = useState<LiveState>({ clusters: null, error: null, paused: false });
  useEffect(() => {
    let source: EventSource | null = null;
    let reopen: ReturnType<typeof setTimeout> | undefined;
    const onClusters = (event: MessageEvent<string>) => {
      const data = JSON.parse(event.data) as { clusters: UiCluster[] };
      setState({ clusters: data.clusters, error: null, paused: false });
    };
    const onError = () => {
      setState((s) => ({ ...s, error: "Live updates are interrupted; reconnecting…" }));
      if (source?.readyState !== EventSource.CLOSED) return;
      // Refused (signed out, or too many pages open): the browser gives up, so the page checks and retries.
      close();
      void checkSession();
      reopen = setTimeout(open, REOPEN_MS);
    };
    const open = () => {
      if (source || document.visibilityState === "hidden") return;
      source = new EventSource(`ui/events?scope=${scope}`);
      source.addEventListener("clusters", onClusters as EventListener);
      source.addEventListener("error", onError);
    };
    const close = () => {
      clearTimeout(reopen);
      if (!source) return;
      source.removeEventListener("clusters", onClusters as EventListener);
      source.removeEventListener("error", onError);
      source.close();
      source = null;
    };
    const onVisibility = () => {
      if (document.visibilityState === "hidden") {
        close();
        setState((s) => ({ ...s, paused: true }));
      } else {
        open();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    if (document.visibilityState !== "hidden") open();
    return () => {
      document.removeEventListener("visibilitychange", onVisibility);
      clearTimeout(reopen);
      close();
    };
  }, [scope]);
  return state;
}

/** The current time, updated every second (uptimes and countdowns). */
export function useNow(periodMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(timer);
  }, [periodMs]);
  return now;
}
