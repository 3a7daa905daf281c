/**
 * The cluster options users may set, and how chosen values become a cluster's configuration.
 * Built-in options serve out of the box; `clusters.options_file` replaces them.
 */
import { readFileSync } from "node:fs";
import { parseYaml } from "../config/yaml.js";
import type { GatewayConfig } from "../config/config.js";
import type { ClusterConfig } from "../clusters/model.js";
import { fieldSpec, parseOptions, validateFieldDefinition, type FieldDefinition } from "./fields.js";
import { deriveMaxWorkers } from "./limits.js";
import { validateMounts, type MountDefinition } from "./mounts.js";

export type ParsedOptions =
  | { ok: true; options: Record<string, unknown>; config: ClusterConfig }
  | { ok: false; error: string };

export interface OptionsCatalog {
  /** The JSON of `GET /api/v1/options`. */
  spec(): unknown[];
  /** Validates a user's options and derives the cluster's configuration. */
  parse(requested: unknown): ParsedOptions;
}

const GIB = 1024 ** 3;

export const BUILTIN_OPTIONS: FieldDefinition[] = [
  { type: "int", field: "worker_cores", label: "Worker cores", default: 1, min: 1, max: null },
  { type: "float", field: "worker_memory", label: "Worker memory (GiB)", default: 2, min: 0.25, max: null },
  { type: "mapping", field: "environment", label: "Environment variables", default: {} },
  { type: "float", field: "idle_timeout", label: "Idle timeout (seconds, 0 = never)", default: 3600, min: 0, max: null },
];

/**
 * Targets an option may set: a key of the cluster configuration, `environment.NAME` for one variable,
 * `mounts.NAME` (a bool) or `mounts` (a select of mount names) for allow-listed mounts, and `resources.KIND` (an
 * int) for a generic resource each worker reserves and advertises to Dask, such as GPU.
 */
const ENV_TARGET = /^environment\.([A-Za-z_][A-Za-z0-9_]*)$/;
const MOUNT_TARGET = /^mounts\.([A-Za-z_][A-Za-z0-9_]*)$/;
const RESOURCE_TARGET = /^resources\.([A-Za-z][A-Za-z0-9_.-]*)$/;
const TARGETS = ["worker_cores", "worker_threads", "worker_memory", "scheduler_cores", "scheduler_memory", "environment", "idle_timeout", "orphan_timeout", "image", "mounts"] as const;

/** What the options file defines: the fields users set, and the mounts they may choose among. */
interface OptionsFile {
  options: FieldDefinition[];
  mounts: MountDefinition[];
}

/** Loads the options (built-in or from the file) and checks them once at startup. */
export function loadCatalog(config: GatewayConfig): OptionsCatalog {
  const file = config.clusters.optionsFile;
  const { options: defs, mounts } = file ? readOptionsFile(file) : { options: BUILTIN_OPTIONS, mounts: [] };
  for (const def of defs) {
    const problem = validateFieldDefinition(def) ?? validateTarget(def, mounts);
    if (problem) throw new Error(`${file ?? "built-in options"}: ${problem}`);
  }
  const specs = defs.map(fieldSpec);
  return {
    spec: () => specs,
    parse(requested) {
      const parsed = parseOptions(defs, requested);
      if (!parsed.ok) return parsed;
      try {
        return { ok: true, options: parsed.options, config: toClusterConfig(parsed.config, config, mounts) };
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
    },
  };
}

function readOptionsFile(file: string): OptionsFile {
  const doc = parseYaml(readFileSync(file, "utf8")) as { options?: unknown; mounts?: unknown } | null;
  if (!Array.isArray(doc?.options)) throw new Error(`clusters.options_file ${file}: expected 'options:' with a list of fields`);
  const mounts = doc.mounts ?? [];
  const problem = validateMounts(mounts);
  if (problem) throw new Error(`clusters.options_file ${file}: ${problem}`);
  return { options: doc.options as FieldDefinition[], mounts: mounts as MountDefinition[] };
}

/** Checks what an option sets, and that its type fits: mounts are chosen by bool or select, resources are counted by int. */
function validateTarget(def: FieldDefinition, mounts: readonly MountDefinition[]): string | null {
  const target = def.target ?? def.field;
  const known = (name: unknown) => mounts.some((m) => m.name === name);
  const mount = MOUNT_TARGET.exec(target);
  if (mount) {
    if (!known(mount[1])) return `option '${def.field}' sets '${target}', but no mount is named '${mount[1]}' under mounts:`;
    return def.type === "bool" ? null : `option '${def.field}' sets '${target}': a single mount is chosen with a bool option`;
  }
  if (target === "mounts") {
    if (def.type !== "select") return `option '${def.field}' sets 'mounts': mounts are chosen with a select option (or a bool option with target mounts.NAME)`;
    for (const o of def.options) {
      const value = typeof o === "string" ? o : o.value;
      const names = value === null ? [] : Array.isArray(value) ? value : [value];
      const bad = names.find((n) => !known(n));
      if (bad !== undefined) return `option '${def.field}': ${JSON.stringify(bad)} is not a mount defined under mounts:`;
    }
    return null;
  }
  if (RESOURCE_TARGET.test(target)) {
    return def.type === "int" && (def.min ?? -1) >= 0 ? null : `option '${def.field}' sets '${target}': a resource count is an int option with min 0 or more`;
  }
  if ((TARGETS as readonly string[]).includes(target) || ENV_TARGET.test(target)) return null;
  return `option '${def.field}' sets '${target}', which is not a cluster setting; use target: one of ${TARGETS.join(", ")}, environment.NAME, mounts.NAME or resources.KIND`;
}

/** Applies chosen values over the defaults and checks them against the cluster limits. */
function toClusterConfig(values: Record<string, unknown>, config: GatewayConfig, mounts: readonly MountDefinition[]): ClusterConfig {
  const num = (key: string, dflt: number) => (values[key] === undefined ? dflt : Number(values[key]));
  const workerCores = num("worker_cores", 1);
  const base: ClusterConfig = {
    workerCores,
    workerThreads: Math.max(1, Math.floor(num("worker_threads", workerCores))),
    workerMemoryBytes: Math.round(num("worker_memory", 2) * GIB),
    schedulerCores: num("scheduler_cores", 1),
    schedulerMemoryBytes: Math.round(num("scheduler_memory", 2) * GIB),
    environment: { ...environment(values.environment), ...singleVariables(values) },
    idleTimeout: num("idle_timeout", 0),
    orphanTimeout: num("orphan_timeout", config.clusters.orphanTimeout),
    maxWorkers: null,
    image: typeof values.image === "string" && values.image ? values.image : null,
    mounts: chosenMounts(values, mounts),
    workerResources: resourceCounts(values),
  };
  const limits = config.limits;
  base.maxWorkers = deriveMaxWorkers({
    clusterMaxWorkers: limits.clusterMaxWorkers,
    clusterMaxCores: limits.clusterMaxCores,
    clusterMaxMemory: limits.clusterMaxMemoryGiB === null ? null : limits.clusterMaxMemoryGiB * GIB,
    schedulerCores: base.schedulerCores,
    schedulerMemory: base.schedulerMemoryBytes,
    workerCores: base.workerCores,
    workerMemory: base.workerMemoryBytes,
  });
  return base;
}

/** Environment values must be strings; numbers and booleans are converted, anything else is refused. */
function environment(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`environment: '${k}' is not a valid variable name`);
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") out[k] = String(v);
    else throw new Error(`environment: the value of '${k}' must be a string, got ${JSON.stringify(v)}`);
  }
  return out;
}

/** Values of options whose target is `environment.NAME`. */
function singleVariables(values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [target, value] of Object.entries(values)) {
    const m = ENV_TARGET.exec(target);
    if (m) out[m[1]!] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

/** The mounts chosen by bool options (`mounts.NAME`) and select options (`mounts`), in definition order. */
function chosenMounts(values: Record<string, unknown>, defs: readonly MountDefinition[]): MountDefinition[] {
  const chosen = new Set<unknown>();
  for (const [target, value] of Object.entries(values)) {
    const m = MOUNT_TARGET.exec(target);
    if (m && value === true) chosen.add(m[1]);
  }
  const selected = values.mounts;
  for (const name of selected === null || selected === undefined ? [] : Array.isArray(selected) ? selected : [selected]) chosen.add(name);
  return defs.filter((d) => chosen.has(d.name));
}

/** Generic resources per worker (`resources.KIND` options), without the ones asked for 0 times. */
function resourceCounts(values: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [target, value] of Object.entries(values)) {
    const m = RESOURCE_TARGET.exec(target);
    if (m && Number(value) > 0) out[m[1]!] = Number(value);
  }
  return out;
}
