/**
 * Per-cluster resource limits (reference section 4.9): the derived worker limit, and the clamping of
 * scale and adapt requests with the reference's exact warning texts.
 */

export interface LimitInputs {
  clusterMaxWorkers: number | null;
  clusterMaxCores: number | null;
  /** Bytes. */
  clusterMaxMemory: number | null;
  schedulerCores: number;
  schedulerMemory: number;
  workerCores: number;
  workerMemory: number;
}

/** The most workers a cluster may have, from the explicit limit and the core and memory limits; null when unbounded. */
export function deriveMaxWorkers(l: LimitInputs): number | null {
  if (l.clusterMaxMemory !== null && l.schedulerMemory > l.clusterMaxMemory) {
    throw new Error(`Scheduler memory request of ${formatMemory(l.schedulerMemory)} exceeds cluster memory limit of ${formatMemory(l.clusterMaxMemory)}`);
  }
  if (l.clusterMaxCores !== null && l.schedulerCores > l.clusterMaxCores) {
    throw new Error(`Scheduler cores request of ${l.schedulerCores} exceeds cluster cores limit of ${l.clusterMaxCores}`);
  }
  const bounds: number[] = [];
  if (l.clusterMaxWorkers !== null) bounds.push(l.clusterMaxWorkers);
  if (l.clusterMaxMemory !== null) bounds.push(Math.floor((l.clusterMaxMemory - l.schedulerMemory) / l.workerMemory));
  if (l.clusterMaxCores !== null) bounds.push(Math.floor((l.clusterMaxCores - l.schedulerCores) / l.workerCores));
  return bounds.length ? Math.max(0, Math.min(...bounds)) : null;
}

/** Clamps a scale request to the limit; the message is null when nothing was clamped. */
export function clampScale(count: number, max: number | null): { count: number; msg: string | null } {
  if (max === null || count <= max) return { count, msg: null };
  return {
    count: max,
    msg: `Scale request of ${count} workers would exceed resource limit of ${max} workers. Scaling to ${max} instead.`,
  };
}

/** Clamps an adapt request; with a limit, a missing maximum becomes the limit and a missing minimum 0. */
export function clampAdapt(minimum: number | null, maximum: number | null, max: number | null): { minimum: number | null; maximum: number | null; msg: string | null } {
  if (max === null) return { minimum, maximum, msg: null };
  const lo = minimum ?? 0;
  const hi = maximum ?? max;
  if (lo <= max && hi <= max) return { minimum: lo, maximum: hi, msg: null };
  const newHi = Math.min(hi, max);
  const newLo = Math.min(lo, max);
  return {
    minimum: newLo,
    maximum: newHi,
    msg: `Adapt with \`maximum=${hi}, minimum=${lo}\` workers would exceed resource limit of ${max} workers. Using \`maximum=${newHi}, minimum=${newLo}\` instead.`,
  };
}

const UNITS = ["", "K", "M", "G", "T"];

/** Memory in bytes as the reference writes it (`2.0 G`). */
export function formatMemory(bytes: number): string {
  let i = 0;
  let value = bytes;
  while (value >= 1024 && i < UNITS.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${bytes}` : `${value.toFixed(1)} ${UNITS[i]}`;
}
