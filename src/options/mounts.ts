/**
 * The data an operator lets clusters mount: named volumes, paths on the nodes, and per-user volumes. Users only
 * choose among these definitions through cluster options; nothing else can ever be mounted.
 */

export const MOUNT_TYPES = ["volume", "bind", "user_volume"] as const;
export type MountType = (typeof MOUNT_TYPES)[number];

/** One allow-listed mount, as written under `mounts:` in the options file. */
export interface MountDefinition {
  /** What options refer to it by (`target: mounts.NAME`, or NAME among a select's values). */
  name: string;
  type: MountType;
  /** Volume name (`volume`), absolute path on the nodes (`bind`), or volume name template with `{user}` (`user_volume`). */
  source: string;
  /** Absolute path inside the scheduler and worker containers. */
  target: string;
  read_only?: boolean;
  /** Mounted into workers only, not the scheduler. */
  workers_only?: boolean;
  /** Volume driver (volumes only; default `local`), e.g. for a volume every node shares over NFS. */
  driver?: string;
  /** Options of the driver; values may contain `{user}` (user volumes). */
  driver_opts?: Record<string, string>;
  /** The environment variable that holds the mount's path, on every backend. Default: DASK_GATEWAY_MOUNT_<NAME>. */
  env?: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Docker's rule for volume names, with `{user}` allowed in templates. */
const VOLUME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const KEYS = new Set(["name", "type", "source", "target", "read_only", "workers_only", "driver", "driver_opts", "env"]);

/** Checks every definition of the options file; answers a message naming the mount and the field, or null. */
export function validateMounts(defs: unknown): string | null {
  if (!Array.isArray(defs)) return "mounts: expected a list of mount definitions";
  const names = new Set<string>();
  for (const [i, raw] of defs.entries()) {
    const problem = validateMount(raw, `mounts[${i}]`);
    if (problem) return problem;
    const name = (raw as MountDefinition).name;
    if (names.has(name)) return `mounts[${i}]: the name '${name}' is defined twice`;
    names.add(name);
  }
  return null;
}

function validateMount(raw: unknown, where: string): string | null {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return `${where}: expected a mapping`;
  const m = raw as Record<string, unknown>;
  const unknown = Object.keys(m).filter((k) => !KEYS.has(k));
  if (unknown.length) return `${where}: unknown key(s) ${unknown.join(", ")}; allowed: ${[...KEYS].join(", ")}`;
  if (typeof m.name !== "string" || !NAME.test(m.name)) return `${where}.name must be an identifier (letters, digits, _), got ${JSON.stringify(m.name)}`;
  const at = `mount '${m.name}'`;
  if (!(MOUNT_TYPES as readonly unknown[]).includes(m.type)) return `${at}: type must be one of ${MOUNT_TYPES.join(", ")}`;
  if (typeof m.source !== "string" || !m.source) return `${at}: source must be a non-empty string`;
  if (typeof m.target !== "string" || !isCleanAbsolute(m.target) || m.target === "/") return `${at}: target must be an absolute path other than /, got ${JSON.stringify(m.target)}`;
  if (m.type === "bind" && !isCleanAbsolute(m.source)) return `${at}: the source of a bind mount must be an absolute path, got ${JSON.stringify(m.source)}`;
  if (m.type === "volume" && !VOLUME.test(m.source)) return `${at}: source must be a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*), got ${JSON.stringify(m.source)}`;
  if (m.type === "user_volume" && !(m.source.includes("{user}") && VOLUME.test(m.source.replaceAll("{user}", "u")))) {
    return `${at}: the source of a user_volume must be a volume name containing {user}, got ${JSON.stringify(m.source)}`;
  }
  for (const flag of ["read_only", "workers_only"] as const) {
    if (m[flag] !== undefined && typeof m[flag] !== "boolean") return `${at}: ${flag} must be true or false`;
  }
  if ((m.driver !== undefined || m.driver_opts !== undefined) && m.type === "bind") return `${at}: driver and driver_opts apply to volumes, not bind mounts`;
  if (m.driver !== undefined && (typeof m.driver !== "string" || !m.driver)) return `${at}: driver must be a non-empty string`;
  if (m.driver_opts !== undefined && !isStringMap(m.driver_opts)) return `${at}: driver_opts must be a mapping of strings`;
  if (m.env !== undefined && (typeof m.env !== "string" || !ENV.test(m.env))) return `${at}: env must be a variable name`;
  return null;
}

/** The variable that tells processes where a mount is. */
export function mountEnvName(def: MountDefinition): string {
  return def.env ?? `DASK_GATEWAY_MOUNT_${def.name.toUpperCase()}`;
}

/**
 * A user volume's name for one user. The user name is encoded injectively (every character outside [A-Za-z0-9.-]
 * becomes _XX, `_` included), so two users never share a volume, whatever their names.
 */
export function userVolumeName(template: string, user: string): string {
  const encoded = [...Buffer.from(user, "utf8")]
    .map((b) => (/[A-Za-z0-9.-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `_${b.toString(16).padStart(2, "0")}`))
    .join("");
  return template.replaceAll("{user}", encoded);
}

/** A mount made concrete for one cluster's user: the source and driver options with `{user}` filled in. */
export function resolveMount(def: MountDefinition, user: string): MountDefinition {
  if (def.type !== "user_volume") return def;
  const opts = def.driver_opts && Object.fromEntries(Object.entries(def.driver_opts).map(([k, v]) => [k, userVolumeName(v, user)]));
  return { ...def, source: userVolumeName(def.source, user), ...(opts ? { driver_opts: opts } : {}) };
}

export type MountRole = "scheduler" | "worker";

/**
 * The mounts of a scheduler (workers_only left out) or of a worker, `{user}` filled in. A warm scheduler of the
 * pool has no owner yet, so it gets no user volume (the pool never serves a cluster whose scheduler mounts one).
 */
export function mountsFor(mounts: readonly MountDefinition[], user: string, role: MountRole): MountDefinition[] {
  return mounts
    .filter((m) => (role === "worker" || !m.workers_only) && (m.type !== "user_volume" || user !== ""))
    .map((m) => resolveMount(m, user));
}

/** Whether the scheduler mounts something that depends on its user (a warm scheduler of the pool has none yet). */
export function schedulerNeedsUser(mounts: readonly MountDefinition[]): boolean {
  return mounts.some((m) => m.type === "user_volume" && !m.workers_only);
}

function isCleanAbsolute(path: string): boolean {
  return path.startsWith("/") && !path.split("/").some((part) => part === ".." || part === ".") && !path.includes("\0");
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}
