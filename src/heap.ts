/**
 * The size of V8's young generation. Left alone it grows to 16 MiB per semi-space during start-up and stays
 * there: an idle gateway held 16 MiB of it for 1-2 MiB of live objects. So start-up runs with 1 MiB semi-spaces
 * (imported first by cli.ts, before the server's modules load), and once the gateway serves they may grow to
 * MAX_SEMI_SPACE_MIB under load: a young generation that small makes short-lived request objects survive into
 * the old generation, whose collections then pause heartbeats (bench/README.md has the measurements).
 * `--semi-space-growth-factor` is read whenever the young generation would grow, so it works when set at run
 * time. NODE_OPTIONS=--max-semi-space-size=N (or the flag) overrides all of this.
 */
import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";

const MAX_SEMI_SPACE_MIB = 4;
const chosenByUser = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((a) => a.includes("--max-semi-space-size"));

if (!chosenByUser) v8.setFlagsFromString("--semi-space-growth-factor=1");

/** Lets the young generation grow (doubling, as V8 does) up to MAX_SEMI_SPACE_MIB per semi-space. */
export function allowYoungGenerationGrowth(): void {
  if (chosenByUser) return;
  const newSpaceBytes = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
  // Both semi-spaces count in new_space's size. The check runs after each collection; growth happens in one.
  const full = () => newSpaceBytes() >= 2 * MAX_SEMI_SPACE_MIB * 1024 * 1024;
  if (full()) return;
  v8.setFlagsFromString("--semi-space-growth-factor=2");
  const observer = new PerformanceObserver(() => {
    if (!full()) return;
    v8.setFlagsFromString("--semi-space-growth-factor=1");
    observer.disconnect();
  });
  observer.observe({ entryTypes: ["gc"] });
}
