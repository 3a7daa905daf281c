/**
 * Runs each cluster as local processes: a `dask scheduler` with the gateway preload and one
 * `dask worker` per worker, all in the cluster's own directory with its credentials and logs.
 */
import { existsSync } from "node:fs";
import { mkdir, open, readdir, realpath, rm, writeFile, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Readable } from "node:stream";
import type { Backend, BackendState, LogComponent, LogQuery, NodeInfo, SchedulerLaunch, WorkerLaunch } from "../backend.js";
import { BackendError } from "../backend.js";
import { claimPreloadArgs } from "../pool-preload.js";
import { daskResources, describeResources } from "../resources.js";
import { missingDaskReason, schedulerPreloadArgs, stackExitReason } from "../stack-preload.js";
import { localMountEnv, prepareMounts } from "./mounts.js";
import { localLogComponents, localLogStream, localNodes, logFile } from "./logs.js";
import { childrenIn, exitInfo, isAlive, processesIn, spawnLogged, stopProcess } from "./processes.js";

/** Variables passed through from the gateway's environment, as the reference's local backend does. */
const PASSED_ENV = ["PATH", "PYTHONPATH", "CONDA_ROOT", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "LANG", "LC_ALL", "HOME", "TMPDIR"];

/** How much of a dead process's log is read for the reason it died. */
const TAIL_BYTES = 8192;

/** Leftovers hold no state worth a graceful stop. */
const LEFTOVER_STOP_STEPS: Array<[NodeJS.Signals, number]> = [["SIGTERM", 3_000], ["SIGKILL", 5_000]];

export interface LocalBackendOptions {
  /** Parent of every cluster's work directory. */
  clustersDir: string;
  /** Parent of the directories that stand for volumes (backends/local/mounts.ts). */
  volumesDir: string;
  /** The `dask` executable; null finds the project's .venv or PATH. */
  daskCommand: string | null;
  /** How much lower than the gateway's the CPU priority of cluster processes is (0 to 19). */
  niceness?: number;
  /** Stop escalation, shortened in tests. */
  stopSteps?: Array<[NodeJS.Signals, number]>;
}

export class LocalBackend implements Backend {
  readonly kind = "local";
  private readonly dask: string;
  /** Work directories this gateway created, so every process in them is its child (no /proc scan needed). */
  private readonly ownDirs = new Set<string>();

  constructor(private readonly options: LocalBackendOptions) {
    this.dask = options.daskCommand ?? defaultDaskCommand();
  }

  async startCluster(launch: SchedulerLaunch): Promise<BackendState> {
    if (Object.keys(launch.workerResources).length > 0) {
      throw new BackendError(`each worker asks for ${describeResources(launch.workerResources)}, but the local backend has no generic resources (GPUs...): they come from Docker Swarm nodes`);
    }
    this.daskFor(launch); // an image that is no Python environment fails before anything is made
    await prepareMounts(launch, this.options.volumesDir, "scheduler");
    const workdir = join(this.options.clustersDir, launch.name);
    if (await mkdir(workdir, { recursive: true, mode: 0o700 })) this.ownDirs.add(workdir);
    const certs = await writeCredentials(workdir, launch);
    const args = [
      "scheduler", "--protocol", "tls", "--port", "0", "--host", "127.0.0.1",
      "--dashboard-address", "127.0.0.1:0",
      ...schedulerPreloadArgs(claimPreloadArgs(launch)),
      "--dg-api-address", "127.0.0.1:0",
      "--dg-heartbeat-period", String(launch.heartbeatPeriod),
      "--dg-adaptive-period", String(launch.adaptivePeriod),
      "--dg-idle-timeout", String(launch.idleTimeout),
    ];
    const env = {
      ...baseEnv(launch, this.options.volumesDir, "scheduler"),
      DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT: certs.cert,
      DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY: certs.key,
    };
    const pid = await this.spawn(launch, workdir, "scheduler.log", args, { ...env, DASK_DISTRIBUTED__COMM__TLS__CA_FILE: certs.cert, DASK_GATEWAY_API_TOKEN: certs.token });
    return { workdir, pid };
  }

  async stopCluster(launch: SchedulerLaunch, state: BackendState): Promise<void> {
    const workdir = join(this.options.clustersDir, launch.name);
    if (typeof state.pid === "number") await this.stop(state.pid, "scheduler");
    await this.stopLeftovers(workdir, () => true); // workers, and whatever a start cut short by a crash left
    await rm(workdir, { recursive: true, force: true });
    this.ownDirs.delete(workdir);
  }

  /** Work directories of clusters nobody knows any more (their gateway died before recording them). */
  async cleanupOrphans(known: ReadonlySet<string>): Promise<void> {
    const entries = await readdir(this.options.clustersDir).catch(() => [] as string[]);
    for (const name of entries.filter((n) => !known.has(n))) {
      const workdir = join(this.options.clustersDir, name);
      await this.stopLeftovers(workdir, () => true);
      await rm(workdir, { recursive: true, force: true });
    }
  }

  async startWorker(launch: WorkerLaunch): Promise<BackendState> {
    const workdir = String(launch.clusterState.workdir);
    await prepareMounts(launch.cluster, this.options.volumesDir, "worker");
    const certs = certPaths(workdir);
    const args = [
      "worker", launch.schedulerAddress,
      "--dashboard-address", "127.0.0.1:0",
      "--name", launch.workerName,
      "--nthreads", String(launch.workerThreads),
      "--memory-limit", String(launch.workerMemoryBytes),
      "--resources", daskResources(launch),
    ];
    const env = {
      ...baseEnv(launch.cluster, this.options.volumesDir, "worker"),
      DASK_GATEWAY_API_TOKEN: certs.token,
      DASK_DISTRIBUTED__COMM__TLS__CA_FILE: certs.cert,
      DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT: certs.cert,
      DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY: certs.key,
    };
    const pid = await this.spawn(launch.cluster, workdir, `worker-${launch.workerName}.log`, args, env);
    return { pid };
  }

  async stopWorker(launch: WorkerLaunch, state: BackendState): Promise<void> {
    if (typeof state.pid === "number") await this.stop(state.pid, "worker");
    // Found by name too: a start cut short by a gateway crash has no pid recorded.
    await this.stopLeftovers(String(launch.clusterState.workdir), (argv) => argv.includes(launch.workerName));
  }

  async checkCluster(launch: SchedulerLaunch, state: BackendState): Promise<string | null> {
    if (typeof state.pid !== "number") return null;
    const code = exitInfo(state.pid)?.code;
    const stack = typeof code === "number" && !isAlive(state.pid) ? stackExitReason(code, this.stackName(launch)) : null;
    const death = await this.deathReason(state.pid, "scheduler", state.workdir, "scheduler.log");
    return stack && death ? `${stack}; ${death}` : death;
  }

  async checkWorker(launch: WorkerLaunch, state: BackendState): Promise<string | null> {
    const log = `worker-${launch.workerName}.log`;
    return typeof state.pid === "number" ? this.deathReason(state.pid, "worker", launch.clusterState.workdir, log) : null;
  }

  /** The dask command, the niceness and the environment passed through: each fixes how a scheduler starts. */
  schedulerFingerprint(): string {
    const passed = Object.fromEntries(PASSED_ENV.map((name) => [name, process.env[name] ?? null]));
    return JSON.stringify({ dask: this.dask, niceness: this.options.niceness ?? 0, passed });
  }

  async close(): Promise<void> {}

  /** The log files of the cluster's processes (logs.ts). */
  async logComponents(launch: SchedulerLaunch): Promise<string[]> {
    return localLogComponents(join(this.options.clustersDir, launch.name));
  }

  async logs(launch: SchedulerLaunch, _state: BackendState, component: LogComponent, query: LogQuery): Promise<Readable | null> {
    return localLogStream(logFile(join(this.options.clustersDir, launch.name), component), query);
  }

  async nodes(): Promise<NodeInfo[]> {
    return localNodes();
  }

  /**
   * The `dask` of the cluster's stack. On this backend a stack (the `image` option) is the directory of a Python
   * environment (a venv or conda prefix) whose bin/dask runs the cluster; none: the gateway's own.
   */
  private daskFor(launch: SchedulerLaunch): string {
    if (launch.image === null) return this.dask;
    if (!launch.image.startsWith("/")) {
      throw new BackendError(`image '${launch.image}': on the local backend a software stack is the absolute path of a Python environment (a venv or conda prefix with bin/dask), not a container image`);
    }
    return join(launch.image, "bin", "dask");
  }

  private stackName(launch: SchedulerLaunch): string {
    return launch.image === null ? `the gateway's Python environment (${this.dask})` : `the Python environment ${launch.image}`;
  }

  /** Starts the `dask` of the cluster's stack; one that has none fails with the reason. */
  private async spawn(launch: SchedulerLaunch, workdir: string, logName: string, args: string[], env: Record<string, string>): Promise<number> {
    const dask = this.daskFor(launch);
    try {
      return await spawnLogged({ command: dask, args, cwd: workdir, env, logFile: join(workdir, "logs", logName), niceness: this.options.niceness ?? 0 });
    } catch (err) {
      const message = `cannot start '${dask}': ${(err as Error).message}`;
      throw new BackendError(missingDaskReason(message, this.stackName(launch)) ?? message);
    }
  }

  private async stop(pid: number, what: string): Promise<void> {
    if (!(await stopProcess(pid, this.options.stopSteps))) throw new Error(`${what} process ${pid} did not stop`);
  }

  /** Stops the processes running in `workdir` that `matches` selects (whole groups, quickly). */
  private async stopLeftovers(workdir: string, matches: (argv: string[]) => boolean): Promise<void> {
    const running = this.ownDirs.has(workdir) ? childrenIn(workdir) : await this.scan(workdir);
    const leftovers = running.filter((p) => matches(p.argv));
    await Promise.all(leftovers.map((p) => stopProcess(p.pid, LEFTOVER_STOP_STEPS)));
  }

  /** Every process in a directory an earlier gateway may have used (Linux /proc). */
  private async scan(workdir: string): Promise<Array<{ pid: number; argv: string[] }>> {
    const real = await realpath(workdir).catch(() => null);
    return real === null ? [] : processesIn(real); // no directory, so nothing can be running in it
  }

  private async deathReason(pid: number, what: string, workdir: unknown, logName: string): Promise<string | null> {
    if (isAlive(pid)) return null;
    const info = exitInfo(pid);
    const how = info ? (info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`) : "is gone";
    const last = await logTail(workdir, logName);
    return `${what} process ${pid} ${how}${last ? `; last log lines:\n${last}` : ""}`;
  }
}

function baseEnv(launch: SchedulerLaunch, volumesDir: string, role: "scheduler" | "worker"): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  return {
    ...env,
    ...launch.environment,
    ...localMountEnv(launch, volumesDir, role),
    // A warm scheduler of the pool has no owner yet: its workers, started after the claim, get the claimant.
    ...(launch.user ? { USER: launch.user } : {}),
    DASK_GATEWAY_API_URL: launch.apiUrl,
    DASK_GATEWAY_CLUSTER_NAME: launch.name,
    DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: "True",
  };
}

function certPaths(workdir: string) {
  const dir = join(workdir, ".certs");
  return { cert: join(dir, "dask.crt"), key: join(dir, "dask.pem"), token: join(dir, "token") };
}

/** Writes cert, key and token (mode 0600, in 0700 folders); the token goes in a file so it is in no environment. */
async function writeCredentials(workdir: string, launch: SchedulerLaunch) {
  const paths = certPaths(workdir);
  await mkdir(dirname(paths.cert), { recursive: true, mode: 0o700 });
  await mkdir(join(workdir, "logs"), { recursive: true, mode: 0o700 });
  await writeFile(paths.cert, launch.tlsCert, { mode: 0o600, flag: "w" });
  await writeFile(paths.key, launch.tlsKey, { mode: 0o600, flag: "w" });
  await writeFile(paths.token, launch.token, { mode: 0o600, flag: "w" });
  return paths;
}

/** The last lines of a log, read from its last 8 KiB only: logs of long-lived workers grow large. */
async function logTail(workdir: unknown, logName: string, lines = 8): Promise<string> {
  if (typeof workdir !== "string") return "";
  let file: FileHandle | undefined;
  try {
    file = await open(join(workdir, "logs", logName), "r");
    const { size } = await file.stat();
    const length = Math.min(size, TAIL_BYTES);
    const { buffer } = await file.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  } finally {
    await file?.close();
  }
}

/** The project's .venv/bin/dask when it exists (made by `make python-env`), else `dask` on PATH. */
function defaultDaskCommand(): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  const venv = join(root, ".venv", "bin", "dask");
  return existsSync(venv) ? venv : "dask";
}
