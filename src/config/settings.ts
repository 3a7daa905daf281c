/**
 * Every setting of the gateway, with its type, default, environment variable and help text.
 * This table is the single source of truth: the loader, `--help` and `init-config` all read it.
 */

export type SettingType = "string" | "int" | "number" | "bool" | "list" | "enum" | "json";

export interface SettingDef {
  /** Dotted key, as written in the config file (`auth.mode`) and on the command line (`--auth.mode`). */
  readonly key: string;
  readonly type: SettingType;
  readonly default: SettingValue;
  readonly help: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  /** Secrets are never printed by `--print-config` or logged. */
  readonly secret?: boolean;
}

/** A JSON value, for settings of type `json` (a YAML value in the config file, JSON text in env and flags). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type SettingValue = string | number | boolean | string[] | JsonValue[] | null;

const def = (
  key: string,
  type: SettingType,
  dflt: SettingValue,
  help: string,
  extra: Partial<Pick<SettingDef, "choices" | "min" | "secret">> = {},
): SettingDef => ({ key, type, default: dflt, help, ...extra });

export const SETTINGS: readonly SettingDef[] = [
  def("address", "string", "0.0.0.0:8000", "Public listen address (host:port) for the API, dashboards and scheduler TLS traffic."),
  def("scheduler_address", "string", null, "Optional separate listen address for scheduler TLS traffic; by default it shares `address`."),
  def("public_url", "string", null, "URL users reach the gateway at; printed at startup. Default: http://<this host>:<port>."),
  def("trusted_proxies", "list", [], "Addresses or CIDR subnets of the reverse proxies in front of the gateway. A request from one of them is counted under the client address its X-Forwarded-For gives (read from the right, past trusted proxies) by the sign-in throttle; from anywhere else, X-Forwarded-For is ignored. Comma-separated in env and flags."),
  def("api_url", "string", null, "URL schedulers use to reach the gateway API (ends in /api). Default: derived from `address` and the backend."),
  def("state_dir", "string", null, "Directory for the gateway's own state (generated password, cluster records, local cluster work directories). Default: $XDG_STATE_HOME/dask-gateway-swarm or ~/.local/state/dask-gateway-swarm."),
  def("tls.cert", "string", null, "PEM certificate file: serve the public API as HTTPS (scheduler traffic is always end-to-end TLS)."),
  def("tls.key", "string", null, "PEM private key file for `tls.cert`."),
  def("relay", "enum", "auto", "How scheduler connections are relayed: `splice` moves the bytes in the kernel (Linux, the native addon `make build` compiles), `js` through Node streams, `auto` splice where the addon loads, else js. The path in use is logged at start.", { choices: ["auto", "splice", "js"] }),
  def("log.level", "enum", "info", "Log level.", { choices: ["trace", "debug", "info", "warn", "error", "fatal", "silent"] }),
  def("log.format", "enum", "auto", "Log format: JSON lines, human-readable, or auto (pretty on a terminal).", { choices: ["auto", "json", "pretty"] }),

  def("auth.mode", "enum", "password", "`password`: one shared password, any user name (oSparc style). `users`: a users file with hashed passwords.", { choices: ["password", "users"] }),
  def("auth.password", "string", null, "The shared password (mode `password`). Prefer `auth.password_file`. Generated and kept in state_dir when neither is set.", { secret: true }),
  def("auth.password_file", "string", null, "File holding the shared password (mode `password`), e.g. a Docker secret."),
  def("auth.users_file", "string", null, "YAML or JSON users file (mode `users`): `users: {alice: {password: <hash from 'hash-password'>, admin: false}}`."),
  def("auth.admin_users", "list", [], "User names with the admin role (they may list and stop every user's clusters). Comma-separated in env and flags."),
  def("auth.max_failures", "int", 10, "Wrong passwords one client address may send for one user name (API, dashboards, the page's sign-in) within auth.failure_window seconds of the first; then that address and name are refused with 429 and Retry-After for auth.failure_window seconds, even with the right password. At most this many checks of one address and name run at once (more wait their turn). A success resets the count; other names and addresses are not affected; sessions already open go on. 0: no limit.", { min: 0 }),
  def("auth.failure_window", "number", 60, "Seconds over which auth.max_failures counts wrong passwords, and for which an address and user name that reached it are refused.", { min: 1 }),
  def("auth.cookie_max_age", "int", 300, "Seconds a session cookie stays valid on the server (the cookie's Max-Age is twice this, as in the reference).", { min: 1 }),

  def("backend", "enum", "local", "Where clusters run: `local` processes or `swarm` services.", { choices: ["local", "swarm"] }),
  def("local.dask_command", "string", null, "The `dask` executable for local clusters. Default: .venv/bin/dask of this project if present, else `dask` on PATH."),
  def("local.niceness", "int", 10, "How much lower the CPU priority of local cluster processes is than the gateway's (0: the same; at most 19), so the API and the relay stay responsive when clusters saturate the machine.", { min: 0 }),
  def("swarm.network", "string", "dgw", "Overlay network for schedulers, workers and the gateway."),
  def("swarm.image", "string", "dgw-sidecar:latest", "Image of scheduler and worker services (the `image` option, where defined, chooses another). `make up` sets it to the sidecar pushed to the registry, by digest."),
  def("swarm.registry", "string", null, "Registry (host[:port][/prefix]) that image names without a registry host refer to, e.g. `stack:1` becomes <registry>/stack:1; `make up` sets it. With a registry, each cluster's image is pinned by digest when its scheduler starts, so every node runs the same bits, and an image the registry lacks fails the start at once. Unset: images are used as named."),
  def("swarm.registry_auth_file", "string", null, "File holding the credentials to pull images, as JSON {\"username\", \"password\", \"serveraddress\"} (e.g. a Docker secret; `make up` makes one from this machine's `docker login`). Given to every service the gateway creates, as `docker service create --with-registry-auth` does; never logged or put in a label."),
  def("swarm.scheduler_constraint", "list", [], "Placement constraints of scheduler services, e.g. node.role==manager."),
  def("swarm.worker_node_label", "string", null, "Only nodes carrying this label (name or name=value) run workers."),
  def("swarm.workers_per_node", "int", 1, "Maximum workers of one cluster on one node.", { min: 1 }),
  def("swarm.reserved_cores", "number", 0.5, "CPU cores left free on each node when sizing workers from the node.", { min: 0 }),
  def("swarm.reserved_memory", "number", 1, "GiB of memory left free on each node when sizing workers from the node.", { min: 0 }),
  def("swarm.node_backoff", "number", 60, "Seconds a cluster avoids a node where one of its workers could not start (image missing there, a bind-mount path missing, node down); doubled for each further such failure there in a row (up to 8 times), forgotten once a worker of the cluster starts there. The cluster fails only when every eligible node is avoided and it has no worker.", { min: 1 }),
  def("swarm.records_key_file", "string", null, "File holding the key (16+ characters, e.g. a Docker secret) that encrypts cluster records kept in the swarm as Docker configs, so that a gateway moved to another manager re-adopts its clusters. Unset: records stay in state_dir on this machine."),
  def("swarm.gateway_id", "string", "default", "Identity label of this gateway on Docker objects, so several gateways can share a swarm."),

  def("clusters.heartbeat_period", "number", 15, "Seconds between scheduler heartbeats.", { min: 0.1 }),
  def("clusters.heartbeat_timeout", "number", null, "Seconds without a heartbeat before a running cluster fails. Default: 2 x heartbeat_period."),
  def("clusters.start_timeout", "number", 60, "Seconds a cluster may take from creation to its first heartbeat.", { min: 1 }),
  def("clusters.worker_start_timeout", "number", 60, "Seconds a worker may take to connect to its scheduler; doubled for each worker of the cluster that did not connect in time (up to 8 times), so slow machines still get their workers.", { min: 1 }),
  def("clusters.worker_start_failure_limit", "int", 3, "Consecutive worker start failures before the cluster fails.", { min: 1 }),
  def("clusters.check_period", "number", null, "Seconds between timeout and liveness checks. Default: derived from the timeouts (at most 15)."),
  def("clusters.stopped_retention", "number", 86400, "Seconds stopped and failed clusters stay visible with ?status=STOPPED,FAILED.", { min: 0 }),
  def("clusters.adaptive_period", "number", 3, "Seconds between adaptive scaling decisions in the scheduler.", { min: 0.1 }),
  def("clusters.stop_on_shutdown", "bool", true, "Stop every cluster when the gateway stops."),
  def("clusters.options_file", "string", null, "YAML or JSON file defining the cluster options users may set (replaces the built-in ones)."),
  def("clusters.orphan_timeout", "number", 0, "Stop a cluster after this many seconds without any connected client (0: never). Users may override it with the `orphan_timeout` option when defined.", { min: 0 }),

  def("pool.size", "int", 1, "Warm schedulers kept ready for each option set of pool.option_sets, so that new_cluster() is answered with a RUNNING cluster at once (0 turns the pool off). Each is a running dask scheduler (about 100 MB resident).", { min: 0 }),
  def("pool.max_schedulers", "int", null, "Most warm schedulers, ready and starting, across all option sets. Default: pool.size x the number of distinct pool keys.", { min: 0 }),
  def("pool.max_age", "number", 3600, "Seconds after which a warm scheduler nobody claimed is replaced by a fresh one (0: never).", { min: 0 }),
  def("pool.option_sets", "json", [{}], "Option sets that get a pool: a list of cluster_options mappings as a client sends them ({} is the default options). A request whose normalized options start the scheduler the same way (image, environment, scheduler cores and memory) is served from that set's pool; worker options do not matter. JSON text in env and flags."),
  def("pool.refill_parallel", "int", 2, "Warm schedulers started at the same time at most.", { min: 1 }),
  def("pool.failure_backoff", "number", 2, "Seconds before the pool starts another warm scheduler for an option set whose last one failed to start or died; doubled for each further failure in a row (up to 32 times).", { min: 0.1 }),

  def("web.enabled", "bool", true, "Serve the web page at / (sign-in, clusters, logs, operators' views); the API works either way."),
  def("web.session_max_age", "int", 28800, "Seconds a page sign-in stays valid without use (each request renews it); the gateway's restart signs everyone out.", { min: 60 }),
  def("web.usage_days", "int", 90, "Days of per-user usage (core-hours, cluster-hours) the gateway keeps in state_dir/usage.json for the operators' page.", { min: 1 }),
  def("logs.kept_bytes", "int", 262144, "Bytes of a stopped or failed cluster's scheduler log kept in state_dir/logs for clusters.stopped_retention, after the backend removed its process or service (0: none).", { min: 0 }),
  def("logs.max_streams", "int", 100, "Log reads (GET .../logs/<component>) served at once, followers included; more are answered 429.", { min: 1 }),

  def("limits.cluster_max_workers", "int", null, "Maximum workers of one cluster.", { min: 0 }),
  def("limits.cluster_max_cores", "number", null, "Maximum cores of one cluster (scheduler and workers).", { min: 0 }),
  def("limits.cluster_max_memory", "number", null, "Maximum memory of one cluster in GiB (scheduler and workers).", { min: 0 }),
  def("limits.user_max_clusters", "int", null, "Maximum active clusters per user.", { min: 0 }),
  def("limits.user_max_workers", "int", null, "Maximum workers per user across all of their clusters.", { min: 0 }),
  def("limits.max_body_bytes", "int", 1048576, "Largest request body accepted.", { min: 1024 }),
  def("limits.max_connections", "int", 10000, "Most connections the public port holds open at once; more are refused.", { min: 1 }),
  def("limits.listen_backlog", "int", 4096, "Connections the kernel queues on each listening port until the gateway accepts them (capped by net.core.somaxconn); a burst beyond it waits for TCP retransmits.", { min: 1 }),
  def("limits.hello_timeout", "number", 10, "Seconds a new connection may take to send its first bytes (HTTP request or TLS ClientHello).", { min: 0.1 }),
  def("limits.create_rate", "int", 30, "Clusters one user may create per minute.", { min: 1 }),
];

/** Looks up a setting by key; throws for a key that does not exist (a programming error). */
export function settingDef(key: string): SettingDef {
  const found = SETTINGS.find((s) => s.key === key);
  if (!found) throw new Error(`unknown setting ${key}`);
  return found;
}

/** The environment variable of a setting: `DGW_` + upper-case key with dots as `_`. */
export function envName(key: string): string {
  return "DGW_" + key.toUpperCase().replace(/\./g, "_");
}
