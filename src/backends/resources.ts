/**
 * What each worker advertises to Dask as resources (`dask worker --resources`), so that tasks can ask for them:
 * `client.submit(f, resources={"GPU": 1})` runs only on workers that have a GPU.
 */
import type { WorkerLaunch } from "./backend.js";

/** Its cores and memory (bytes) under the names CPU and MEMORY, and each generic resource it reserved (GPU...). */
export function daskResources(launch: WorkerLaunch): string {
  const resources: Record<string, number> = { CPU: launch.workerCores, MEMORY: launch.workerMemoryBytes, ...launch.cluster.workerResources };
  return Object.entries(resources).map(([kind, n]) => `${kind}=${n}`).join(",");
}

/** The generic resources a worker asks for, as `GPU=1, FPGA=2`, for messages. */
export function describeResources(resources: Record<string, number>): string {
  return Object.entries(resources).map(([kind, n]) => `${kind}=${n}`).join(", ");
}
