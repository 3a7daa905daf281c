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

/** Targets an option may set: a key of the cluster configuration, or `environment.NAME` for one variable. */
const ENV_TARGET = /^environment\.([A-Za-z_][A-Za-z0-9_]*)$/;
const TARGETS = ["worker_cores", "worker_threads", "worker_memory", "scheduler_cores", "scheduler_memory", "environment", "idle_timeout", "orphan_timeout", "image"] as const;

/** Loads the options (built-in or from the file) and checks them once at startup. */
export function loadCatalog(config: GatewayConfig): OptionsCatalog {
  const defs = config.clusters.optionsFile ? readOptionsFile(config.clusters.optionsFile) : BUILTIN_OPTIONS;
  for (const def of defs) {
    const problem = validateFieldDefinition(def);
    if (problem) throw new Error(`${config.clusters.optionsFile ?? "built-in options"}: ${problem}`);
    const target = def.target ?? def.field;
    if (!(TARGETS as readonly string[]).includes(target) && !ENV_TARGET.test(target)) {
      throw new Error(`option '${def.field}' sets '${target}', which is not a cluster setting; use target: one of ${TARGETS.join(", ")}, or environment.NAME`);
    }
  }
  const specs = defs.map(fieldSpec);
  return {
    spec: () => specs,
    parse(requested) {
      const parsed = parseOptions(defs, requested);
      if (!parsed.ok) return parsed;
      try {
        return { ok: true, options: parsed.options, config: toClusterConfig(parsed.config, config) };
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
    },
  };
}

function readOptionsFile(file: string): FieldDefinition[] {
  const doc = parseYaml(readFileSync(file, "utf8")) as { options?: unknown } | null;
  if (!Array.isArray(doc?.options)) throw new Error(`clusters.options_file ${file}: expected 'options:' with a list of fields`);
  return doc.options as FieldDefinition[];
}

/** Applies chosen values over the defaults and checks them against the cluster limits. */
function toClusterConfig(values: Record<string, unknown>, config: GatewayConfig): ClusterConfig {
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
