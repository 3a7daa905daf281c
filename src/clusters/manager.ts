/**
 * The cluster manager: it owns every cluster record and moves each one's current state toward its
 * target through a work queue. Requests and heartbeats only change targets and counts; the reconcile
 * functions below are the one place where backends are called.
 */
import { randomBytes } from "node:crypto";
import { NodeError, type Backend, type BackendState, type SchedulerLaunch, type WorkerLaunch } from "../backends/backend.js";
import type { GatewayConfig } from "../config/config.js";
import type { Logger } from "../logging.js";
import type { User } from "../auth/users.js";
import { newKeypair } from "../tls/keypair.js";
import { clampAdapt, clampScale } from "../options/limits.js";
import type { OptionsCatalog } from "../options/catalog.js";
import { applyHeartbeat, decideScale, workerStartAllowance, type HeartbeatMessage } from "./heartbeat.js";
import {
  Job, activeWorkers, isActive, isUserCluster, publicStatus,
  type ClusterConfig, type ClusterRecord, type ClusterStatus, type RecycleReason, type WorkerRecord,
} from "./model.js";
import { describeVersions, schedulerLaunch, type LaunchIdentity } from "./launch.js";
import { poolKey, type PoolHost, type PoolOptionSet, type WarmPool } from "./pool.js";
import { claimScheduler, schedulerVersions, sendToScheduler, type SchedulerMessage } from "./scheduler-api.js";
import type { ClusterStore } from "./store.js";
import { WorkQueue } from "./workqueue.js";
import { CreateRate } from "./create-rate.js";
import { PublicError } from "../errors.js";


export interface ManagerOptions {
  backend: Backend;
  log: Logger;
  clusters: GatewayConfig["clusters"];
  limits: GatewayConfig["limits"];
  catalog: OptionsCatalog;
  /** Base URL of the gateway API for schedulers (ends in /api). */
  apiUrl: string;
  store: ClusterStore;
  /** Called before a user's stopped cluster's objects are removed (logs/archive.ts keeps its scheduler's log). */
  beforeRemove?: (launch: SchedulerLaunch, state: BackendState) => Promise<void>;
  /** The warm pool (clusters/pool.ts); without it every cluster starts cold. */
  pool?: WarmPool;
  now?: () => number;
}

/** The owner of a warm scheduler until a claim: nobody. */
const POOL_OWNER = "";
/** A claim tries this many warm schedulers that do not answer before it starts a cluster cold. */
const CLAIM_ATTEMPTS = 3;

const MAX_EVENTS = 200;
const WAIT_LIMIT_MS = 20_000;
/** Clusters checked between two turns of the event loop during a periodic sweep. */
const CHECKS_PER_TURN = 100;

export class ClusterManager {
  private readonly clusters = new Map<string, ClusterRecord>();
  private readonly readyWaiters = new Map<string, Set<() => void>>();
  private readonly createRate: CreateRate;
  private readonly queue: WorkQueue;
  private readonly now: () => number;
  private checkTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private closing = false;

  constructor(private readonly opts: ManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.createRate = new CreateRate(opts.limits.createRate, this.now);
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      parallelism: 20,
      backoffBaseMs: 100,
      backoffMaxMs: 30_000,
      onError: (key, err, attempt) => opts.log.warn({ key, attempt, err: (err as Error).message }, "reconcile failed, retrying"),
    });
  }

  /** Re-adopts the clusters of an earlier run, removes what they left behind, and starts the periodic checks. */
  async start(): Promise<void> {
    const now = this.now();
    const { records, unreadable } = await this.opts.store.load();
    for (const c of records) {
      // Whatever was in flight is resumed: the reconciler takes it from its recorded state.
      c.lastHeartbeat = now;
      c.lastClientSeen = now;
      this.clusters.set(c.name, c);
      this.event(c, "adopted", `adopted after a gateway restart (${publicStatus(c.status, c.target)})`);
      await this.undoUnrecordedStarts(c);
      this.queue.put(clusterKey(c.name));
      for (const w of c.workers.values()) this.queue.put(workerKey(c.name, w.name));
      // A claim cut short by the crash answered nobody; the scheduler may have been armed for it, so it goes.
      if (c.pool?.claiming) this.recycle(c, "interrupted_claim", "the gateway stopped while a claim of it was under way");
      else if (c.pool && !this.opts.pool) this.recycle(c, "config_changed", "the gateway runs without a pool now");
    }
    const known = new Set([...this.clusters.values()].filter((c) => c.status < Job.STOPPED).map((c) => c.name));
    for (const name of unreadable) known.add(name); // left running: its record may be readable again later
    await this.opts.backend.cleanupOrphans?.(known);
    this.checkTimer = setInterval(() => void this.checkAll(), this.opts.clusters.checkPeriod * 1000);
    this.checkTimer.unref();
    this.opts.pool?.start(this.poolHost());
  }

  /**
   * A start that was under way when the gateway died may have launched something it never recorded;
   * removing it before starting again means an interrupted start never leaves a twin behind.
   */
  private async undoUnrecordedStarts(c: ClusterRecord): Promise<void> {
    try {
      if (c.status === Job.CREATED) {
        await this.opts.backend.stopCluster(this.launch(c), c.state);
        c.state = {};
        c.workers.clear();
      }
      for (const w of c.workers.values()) {
        if (w.status === Job.CREATED) await this.opts.backend.stopWorker(this.workerLaunch(c, w), w.state);
      }
    } catch (err) {
      this.opts.log.warn({ cluster: c.name, err: (err as Error).message }, "could not remove what an interrupted start left");
    }
  }

  // ---- Requests -------------------------------------------------------------------------------

  /**
   * Creates a cluster for a user from their requested options; answers its record. Limits are checked first, so a
   * refused request uses nothing; then a ready warm scheduler of the same pool key is claimed, else one starts cold.
   */
  async create(user: User, requested: unknown): Promise<ClusterRecord> {
    const started = performance.now();
    const pool = this.opts.pool;
    let parsed: { options: Record<string, unknown>; config: ClusterConfig };
    try {
      parsed = await this.admit(user, requested);
    } catch (err) {
      if (pool?.enabled) pool.countClaim("refused", (performance.now() - started) / 1000);
      throw err;
    }
    const claimed = pool?.enabled ? await this.claim(user, parsed) : undefined;
    const cluster = claimed ?? (await this.createCold(user, parsed));
    if (pool?.enabled) pool.countClaim(claimed ? "hit" : "miss", (performance.now() - started) / 1000);
    return cluster;
  }

  /** The checks before anything is used: shutdown, the user's limits, the options, the backend, the rate. */
  private async admit(user: User, requested: unknown): Promise<{ options: Record<string, unknown>; config: ClusterConfig }> {
    if (this.closing) throw new PublicError(503, "the gateway is shutting down");
    const max = this.opts.limits.userMaxClusters;
    if (max !== null && this.list(user.name).length >= max) {
      throw new PublicError(409, `user ${user.name} already has ${max} active clusters, the limit set by limits.user_max_clusters; stop one first`);
    }
    const parsed = this.opts.catalog.parse(requested);
    if (!parsed.ok) throw new PublicError(422, parsed.error);
    await this.opts.backend.ping?.().catch((err: Error) => {
      throw this.unreachable(err, "nothing was created; try again shortly");
    });
    this.createRate.take(user.name);
    return parsed;
  }

  private async createCold(user: User, parsed: { options: Record<string, unknown>; config: ClusterConfig }): Promise<ClusterRecord> {
    const cluster = await this.newRecord(user.name, parsed.options, parsed.config);
    await this.addRecord(cluster).catch((err: Error) => {
      throw new PublicError(503, `the cluster could not be recorded (${err.message}); nothing was created; try again shortly`);
    });
    this.event(cluster, "created", `created by ${user.name} with options ${JSON.stringify(parsed.options)}`);
    this.queue.put(clusterKey(cluster.name));
    return cluster;
  }

  /** Holds and stores a new record; one that cannot be stored is not held (nothing is started for it). */
  private async addRecord(c: ClusterRecord): Promise<void> {
    this.clusters.set(c.name, c);
    try {
      await this.opts.store.save(c);
    } catch (err) {
      this.clusters.delete(c.name);
      throw err;
    }
  }

  /** A new record with its own name, TLS key pair and token, not yet started. */
  private async newRecord(user: string, options: Record<string, unknown>, config: ClusterConfig): Promise<ClusterRecord> {
    const name = randomBytes(16).toString("hex");
    const { cert, key } = await newKeypair(name);
    const now = this.now();
    return {
      name, user, token: randomBytes(16).toString("hex"), tlsCert: cert, tlsKey: key, options, config,
      status: Job.CREATED, target: Job.RUNNING, startTime: now, stopTime: null, count: 0,
      schedulerAddress: "", dashboardAddress: "", apiAddress: "", lastHeartbeat: null,
      workerFailures: 0, reason: null, events: [], state: {}, workers: new Map(), clients: 0, lastClientSeen: now,
    };
  }

  /**
   * Gives the user a ready warm scheduler of the request's pool key, or undefined (a miss). The pool marks the one
   * it hands over synchronously, so concurrent claims never share one; the scheduler must answer the claim (which
   * arms its idle timeout from now) before it becomes the user's, and it is recorded as theirs before the answer.
   */
  private async claim(user: User, parsed: { options: Record<string, unknown>; config: ClusterConfig }): Promise<ClusterRecord | undefined> {
    const key = this.keyOf(parsed.config);
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const warm = this.opts.pool!.take(key);
      if (!warm) return undefined;
      const answered = await claimScheduler(warm.apiAddress, warm.token, parsed.config.idleTimeout);
      if (!answered || warm.target !== Job.RUNNING || this.closing) {
        this.recycle(warm, "claim_failed", answered ? "stopped while it was being claimed" : `its API at ${warm.apiAddress} did not answer the claim`);
        continue;
      }
      const membership = warm.pool!;
      const now = this.now();
      const readyFor = Math.round((now - warm.startTime) / 1000);
      Object.assign(warm, { user: user.name, options: parsed.options, config: parsed.config, startTime: now, lastClientSeen: now, events: [] });
      delete warm.pool;
      try {
        await this.opts.store.save(warm);
      } catch (err) {
        // Nobody may use a scheduler its record does not give them: back to the pool's, and stopped.
        Object.assign(warm, { user: POOL_OWNER, pool: membership });
        this.recycle(warm, "claim_failed", `its claim could not be recorded (${(err as Error).message})`);
        throw new PublicError(503, `the cluster could not be recorded (${(err as Error).message}); nothing was created; try again shortly`);
      }
      this.event(warm, "created", `created by ${user.name} with options ${JSON.stringify(parsed.options)}`);
      this.event(warm, "running", `claimed from the warm pool (its scheduler started ${readyFor} s earlier); scheduler at ${warm.schedulerAddress}, dashboard ${warm.dashboardAddress || "none"}`);
      this.versionsEvent(warm);
      this.queue.put(clusterKey(warm.name));
      return warm;
    }
    return undefined;
  }

  /** The JSON of `GET /api/v1/options`. */
  optionsSpec(): unknown[] {
    return this.opts.catalog.spec();
  }

  /** A user's cluster by name; the pool's warm schedulers are unknown here, to everyone. */
  get(name: string): ClusterRecord | undefined {
    const c = this.clusters.get(name);
    return c && isUserCluster(c) ? c : undefined;
  }

  /** Any cluster by name, warm schedulers included: for requests a scheduler authenticates with its own token. */
  forScheduler(name: string): ClusterRecord | undefined {
    return this.clusters.get(name);
  }

  /** A user's clusters (every user's for null): active ones by default, else those whose public status is listed. */
  list(user: string | null, statuses?: readonly ClusterStatus[]): ClusterRecord[] {
    return [...this.clusters.values()].filter(
      (c) => isUserCluster(c) && (user === null || c.user === user) && (statuses ? statuses.includes(publicStatus(c.status, c.target)) : isActive(c)),
    );
  }

  /** Resolves when the cluster is running, stopping or stopped, or after 20 s, whichever comes first. */
  async waitReady(cluster: ClusterRecord, limitMs = WAIT_LIMIT_MS): Promise<void> {
    if (isReady(cluster)) return;
    await new Promise<void>((resolve) => {
      const waiters = this.readyWaiters.get(cluster.name) ?? new Set();
      this.readyWaiters.set(cluster.name, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, limitMs);
      waiters.add(done);
    });
  }

  /** Asks a cluster to stop (STOPPED) or fail (FAILED) with a reason; a no-op once a stop was asked. */
  requestStop(cluster: ClusterRecord, target: typeof Job.STOPPED | typeof Job.FAILED, reason: string): void {
    if (cluster.target > Job.RUNNING) return;
    cluster.target = target;
    cluster.reason = reason;
    this.event(cluster, target === Job.FAILED ? "failing" : "stopping", reason, target === Job.FAILED ? "warn" : "info");
    this.queue.put(clusterKey(cluster.name));
  }

  /**
   * Forwards a scale request to the scheduler, clamped to the limits; answers the reference's {ok, msg}. Workers
   * that cannot be placed now (places avoided after failures) are still asked for: they start once placeable.
   */
  async scale(cluster: ClusterRecord, count: number): Promise<{ ok: boolean; msg: string | null }> {
    let clamp = clampScale(count, this.workerLimit(cluster));
    const capacity = await this.opts.backend.capacity?.(this.launch(cluster)).catch((err: Error) => {
      throw this.unreachable(err, "the scale was not changed; try again shortly");
    });
    if (capacity && clamp.count > capacity.workers) {
      clamp = { count: capacity.workers, msg: `Scale request of ${count} workers exceeds what can be placed: ${capacity.why}. Scaling to ${capacity.workers} instead.` };
    }
    const later = capacity?.now && clamp.count > capacity.now.workers
      ? `Only ${capacity.now.workers} of ${clamp.count} workers can be placed now: ${capacity.now.why}. The others start once they can be placed.`
      : null;
    await this.forward(cluster, { op: "scale", count: clamp.count });
    const msg = [clamp.msg, later].filter((m) => m !== null).join(" ") || null;
    return { ok: msg === null, msg };
  }

  /** Forwards an adapt request to the scheduler, clamped to the limits. */
  async adapt(cluster: ClusterRecord, minimum: number | null, maximum: number | null, active: boolean): Promise<{ ok: boolean; msg: string | null }> {
    const clamp = clampAdapt(minimum, maximum, this.workerLimit(cluster));
    await this.forward(cluster, { op: "adapt", minimum: clamp.minimum, maximum: clamp.maximum, active });
    return { ok: clamp.msg === null, msg: clamp.msg };
  }

  /** Applies a scheduler heartbeat; unknown or stopping clusters are ignored, as in the reference. */
  heartbeat(cluster: ClusterRecord, msg: HeartbeatMessage): void {
    if (cluster.target > Job.RUNNING) return;
    const effects = applyHeartbeat(cluster, msg, this.workerLimit(cluster), this.now());
    for (const worker of effects.workersChanged) {
      if (worker.target === Job.FAILED) this.event(cluster, "worker-lost", `worker ${worker.name} left the scheduler unexpectedly; a new one replaces it`, "warn");
      this.queue.put(workerKey(cluster.name, worker.name));
    }
    if (effects.clusterChanged || cluster.status !== Job.RUNNING) this.queue.put(clusterKey(cluster.name));
  }

  /** How many clusters have each public status. */
  statusCounts(): Record<ClusterStatus, number> {
    const counts: Record<ClusterStatus, number> = { PENDING: 0, RUNNING: 0, STOPPING: 0, STOPPED: 0, FAILED: 0 };
    for (const c of this.clusters.values()) if (isUserCluster(c)) counts[publicStatus(c.status, c.target)]++;
    return counts;
  }

  /** What the backend was told about a user cluster's scheduler (for reading its logs). */
  schedulerLaunch(cluster: ClusterRecord): SchedulerLaunch {
    return this.launch(cluster);
  }

  /** Where a running cluster's scheduler listens (host:port), for the TLS relay. */
  schedulerTarget(name: string): { host: string; port: number } | undefined {
    const c = this.get(name);
    return c && publicStatus(c.status, c.target) === "RUNNING" ? hostPort(c.schedulerAddress) : undefined;
  }

  /** Where a running cluster's dashboard listens, for the dashboard proxy. */
  dashboardTarget(name: string): { host: string; port: number } | undefined {
    const c = this.get(name);
    return c && publicStatus(c.status, c.target) === "RUNNING" && c.dashboardAddress ? hostPort(c.dashboardAddress) : undefined;
  }

  /** Counts client connections relayed to a cluster (for the orphan timeout). */
  clientConnections(name: string, delta: 1 | -1): void {
    const c = this.get(name);
    if (!c) return;
    c.clients = Math.max(0, c.clients + delta);
    c.lastClientSeen = this.now();
  }

  /** Stops taking work; stops every cluster first when configured to. */
  async close(): Promise<void> {
    this.closing = true;
    this.opts.pool?.close();
    clearInterval(this.checkTimer);
    if (this.opts.clusters.stopOnShutdown) {
      for (const c of this.clusters.values()) this.requestStop(c, Job.STOPPED, "the gateway shut down");
      await Promise.race([this.queue.idle(), sleep(30_000)]);
    }
    this.queue.close();
    await Promise.all([...this.clusters.values()].map((c) => this.opts.store.save(c).catch((err: Error) => {
      this.opts.log.warn({ cluster: c.name, err: err.message }, "could not record the cluster on shutdown");
    })));
    for (const waiters of this.readyWaiters.values()) for (const w of waiters) w();
  }

  // ---- Reconciliation -------------------------------------------------------------------------

  private async reconcile(key: string): Promise<void> {
    const [kind, name, workerName] = key.split("/");
    const cluster = this.clusters.get(name!);
    if (!cluster) return;
    try {
      if (kind === "w") {
        const worker = cluster.workers.get(workerName!);
        if (worker) await this.reconcileWorker(cluster, worker);
      } else {
        await this.reconcileCluster(cluster);
      }
    } finally {
      // A record that cannot be written fails the reconcile, which the queue retries with backoff.
      if (this.clusters.has(cluster.name)) await this.opts.store.save(cluster);
    }
  }

  private async reconcileCluster(c: ClusterRecord): Promise<void> {
    if (c.target > Job.RUNNING) {
      if (c.status < Job.CLOSING) this.toClosing(c);
      if (c.status === Job.CLOSING) await this.finishStop(c);
      return;
    }
    if (c.status === Job.CREATED) await this.startScheduler(c);
    if (c.status === Job.SUBMITTED && c.schedulerAddress && c.target === Job.RUNNING) this.toRunning(c);
    // A warm scheduler has no workers to scale until it is claimed.
    if (c.status === Job.RUNNING && c.target === Job.RUNNING && isUserCluster(c)) await this.checkScale(c);
  }

  private async startScheduler(c: ClusterRecord): Promise<void> {
    try {
      const state = await withTimeout(this.opts.backend.startCluster(this.launch(c)), this.opts.clusters.startTimeout, "starting the scheduler");
      c.state = state;
      c.status = Job.SUBMITTED;
      this.event(c, "submitted", `scheduler started (${this.opts.backend.kind} backend)`);
    } catch (err) {
      c.status = Job.SUBMITTED;
      this.requestStop(c, Job.FAILED, `the scheduler failed to start: ${(err as Error).message}`);
      this.queue.put(clusterKey(c.name));
    }
  }

  private toRunning(c: ClusterRecord): void {
    c.status = Job.RUNNING;
    this.event(c, "running", `scheduler at ${c.schedulerAddress}, dashboard ${c.dashboardAddress || "none"}`);
    this.notifyReady(c);
    if (c.pool) this.opts.pool?.poke();
    void this.recordVersions(c);
  }

  /** Asks the scheduler its software versions once, so a mismatch with the client shows before the client warns. */
  private async recordVersions(c: ClusterRecord): Promise<void> {
    const versions = await schedulerVersions(c.apiAddress, c.token);
    if (!versions || c.target !== Job.RUNNING) return;
    c.versions = versions;
    this.versionsEvent(c);
    this.queue.put(clusterKey(c.name)); // the reconcile saves the record
  }

  private versionsEvent(c: ClusterRecord): void {
    if (c.versions) this.event(c, "versions", describeVersions(c.versions));
  }

  private async checkScale(c: ClusterRecord): Promise<void> {
    const capacity = await this.opts.backend.capacity?.(this.launch(c));
    const decision = decideScale(c, this.opts.clusters.workerStartFailureLimit, capacity ?? null);
    if (decision.kind === "fail") this.requestStop(c, Job.FAILED, decision.reason);
    if (decision.kind !== "start") return;
    for (let i = 0; i < decision.count; i++) {
      const worker: WorkerRecord = {
        name: randomBytes(16).toString("hex"), status: Job.CREATED, target: Job.RUNNING,
        closeExpected: false, createdAt: this.now(), submittedAt: null, state: {},
      };
      c.workers.set(worker.name, worker);
      this.queue.put(workerKey(c.name, worker.name));
    }
  }

  private toClosing(c: ClusterRecord): void {
    for (const w of c.workers.values()) {
      if (w.target < Job.STOPPED) {
        w.target = Job.STOPPED;
        this.queue.put(workerKey(c.name, w.name));
      }
    }
    c.status = Job.CLOSING;
    this.notifyReady(c);
  }

  private async finishStop(c: ClusterRecord): Promise<void> {
    if ([...c.workers.values()].some((w) => w.status < Job.STOPPED)) return; // Worker reconciles requeue us.
    if (isUserCluster(c)) await this.opts.beforeRemove?.(this.launch(c), c.state);
    // Always asked, even with no recorded state: a start cut short by a crash may have left objects behind.
    await this.opts.backend.stopCluster(this.launch(c), c.state);
    c.workers.clear();
    c.status = c.target;
    c.stopTime = this.now();
    this.event(c, c.status === Job.FAILED ? "failed" : "stopped", c.reason ?? "stopped", c.status === Job.FAILED ? "warn" : "info");
    this.notifyReady(c);
    if (c.pool) {
      // Nobody can see a stopped warm scheduler, so nothing of it is kept; the pool replaces it.
      this.opts.pool?.ended(c);
      this.forget(c);
    }
  }

  private async reconcileWorker(c: ClusterRecord, w: WorkerRecord): Promise<void> {
    if (w.target === Job.RUNNING && w.status === Job.CREATED && c.status === Job.RUNNING) {
      try {
        w.state = await withTimeout(this.opts.backend.startWorker(this.workerLaunch(c, w)), this.opts.clusters.workerStartTimeout, "starting a worker");
        if (w.status === Job.CREATED) w.status = Job.SUBMITTED;
        w.submittedAt = this.now();
      } catch (err) {
        // One bad node is no fault of the cluster: it does not count toward the limit, and the replacement goes elsewhere.
        if (err instanceof NodeError) {
          this.workerFailed(c, w, `worker ${w.name} could not start on node ${err.node} (${err.reason}); the cluster avoids that node for ${err.backoffSeconds} s: the worker goes to another node with room, or waits for one`, false);
        } else {
          this.workerFailed(c, w, `worker ${w.name} failed to start: ${(err as Error).message}`);
        }
      }
    }
    if (w.target >= Job.STOPPED && w.status < Job.STOPPED) {
      await this.opts.backend.stopWorker(this.workerLaunch(c, w), w.state);
      w.status = w.target;
      c.workers.delete(w.name);
      this.queue.put(clusterKey(c.name));
    }
  }

  private workerFailed(c: ClusterRecord, w: WorkerRecord, reason: string, counted = true): void {
    if (counted) c.workerFailures++;
    w.target = Job.FAILED;
    this.event(c, "worker-failed", reason, "warn");
    this.queue.put(workerKey(c.name, w.name));
  }

  // ---- Periodic checks --------------------------------------------------------------------------

  private async checkAll(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      let checked = 0;
      for (const c of [...this.clusters.values()]) {
        await this.checkCluster(c);
        // Checks mostly resolve at once, so without this a sweep of thousands of clusters would hold the
        // event loop, and heartbeats and API requests, until it ends.
        if (++checked % CHECKS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.checking = false;
    }
  }

  /** Timeouts, liveness, orphans and retention of one cluster: each rule stops or fails it with a reason. */
  private async checkCluster(c: ClusterRecord): Promise<void> {
    const now = this.now();
    const cfg = this.opts.clusters;
    if (c.status >= Job.STOPPED) {
      if (c.stopTime !== null && now - c.stopTime > cfg.stoppedRetention * 1000) this.forget(c);
      return;
    }
    if (c.target !== Job.RUNNING) return;
    if (c.status < Job.RUNNING && now - c.startTime > cfg.startTimeout * 1000) {
      return this.requestStop(c, Job.FAILED, `the scheduler did not connect within clusters.start_timeout (${cfg.startTimeout} s)`);
    }
    if (c.status === Job.RUNNING && c.lastHeartbeat !== null && now - c.lastHeartbeat > cfg.heartbeatTimeout * 1000) {
      return this.requestStop(c, Job.FAILED, `no heartbeat from the scheduler for ${cfg.heartbeatTimeout} s`);
    }
    if (c.status >= Job.SUBMITTED && Object.keys(c.state).length > 0) {
      const dead = await this.opts.backend.checkCluster(this.launch(c), c.state).catch(() => null);
      if (dead) return this.requestStop(c, Job.FAILED, dead);
    }
    // A warm scheduler has no client until it is claimed (lastClientSeen is set again then).
    if (c.status === Job.RUNNING && isUserCluster(c) && c.config.orphanTimeout > 0 && c.clients === 0 && now - c.lastClientSeen > c.config.orphanTimeout * 1000) {
      return this.requestStop(c, Job.STOPPED, `no client connected for ${c.config.orphanTimeout} s (orphan timeout)`);
    }
    await this.checkWorkers(c, now);
    // A cluster short of workers is checked again: a place whose back-off expired (or a new node) is used again.
    if (c.status === Job.RUNNING && activeWorkers(c).length < c.count) this.queue.put(clusterKey(c.name));
  }

  private async checkWorkers(c: ClusterRecord, now: number): Promise<void> {
    const allowed = workerStartAllowance(c, this.opts.clusters.workerStartTimeout);
    for (const w of [...c.workers.values()]) {
      if (w.target !== Job.RUNNING || w.status !== Job.SUBMITTED) continue;
      const dead = await this.opts.backend.checkWorker(this.workerLaunch(c, w), w.state).catch(() => null);
      if (dead) {
        this.workerFailed(c, w, dead);
      } else if (w.submittedAt !== null && now - w.submittedAt > allowed * 1000) {
        w.target = Job.FAILED;
        c.workerTimeouts = (c.workerTimeouts ?? 0) + 1;
        this.event(c, "worker-failed", `worker ${w.name} did not connect within ${allowed} s (clusters.worker_start_timeout, doubled for each worker of this cluster that did not, up to 8 times)`, "warn");
        this.queue.put(workerKey(c.name, w.name));
      }
    }
  }

  // ---- Helpers ----------------------------------------------------------------------------------

  private unreachable(err: Error, consequence: string): PublicError {
    return new PublicError(503, `the ${this.opts.backend.kind} backend cannot be reached (${err.message}); ${consequence}`);
  }

  /** The most workers this cluster may have now: its own limit and what its user has left. */
  private workerLimit(c: ClusterRecord): number | null {
    const perUser = this.opts.limits.userMaxWorkers;
    if (perUser === null) return c.config.maxWorkers;
    const others = this.list(c.user).filter((o) => o !== c).reduce((n, o) => n + o.count, 0);
    const left = Math.max(0, perUser - others);
    return c.config.maxWorkers === null ? left : Math.min(left, c.config.maxWorkers);
  }

  private async forward(c: ClusterRecord, message: SchedulerMessage): Promise<void> {
    const notRunning = new PublicError(409, `cluster ${c.name} is not running`);
    if (publicStatus(c.status, c.target) !== "RUNNING") throw notRunning;
    if (!(await sendToScheduler(c.apiAddress, c.token, message))) {
      this.requestStop(c, Job.FAILED, `the scheduler's API at ${c.apiAddress} did not answer a ${message.op} request`);
      throw notRunning;
    }
    this.event(c, message.op, JSON.stringify(message));
  }

  private launch(c: ClusterRecord): SchedulerLaunch {
    return this.launchOf(c, c.config, c.pool !== undefined);
  }

  private launchOf(identity: LaunchIdentity, config: ClusterConfig, warm: boolean): SchedulerLaunch {
    const { heartbeatPeriod, adaptivePeriod } = this.opts.clusters;
    return schedulerLaunch(identity, config, warm, { apiUrl: this.opts.apiUrl, heartbeatPeriod, adaptivePeriod });
  }

  // ---- The warm pool's hooks (the pool decides how many and which; the lifecycle stays here) -----

  /** The pool key of a configuration: what its scheduler's launch fixes, with this backend. */
  private keyOf(config: ClusterConfig): string {
    const nobody = { name: "", user: POOL_OWNER, token: "", tlsCert: "", tlsKey: "" };
    return poolKey(this.launchOf(nobody, config, false), this.opts.backend.schedulerFingerprint?.() ?? "");
  }

  /** Records a warm scheduler (so a crash right after leaves nothing unknown) and queues its start. */
  private async startWarm(set: PoolOptionSet, key: string): Promise<void> {
    if (this.closing) return;
    const c = await this.newRecord(POOL_OWNER, set.options, set.config);
    c.pool = { key };
    await this.addRecord(c);
    this.event(c, "created", `warm scheduler for the pool (key ${key})`);
    this.queue.put(clusterKey(c.name));
  }

  /** Stops a warm scheduler for the pool, recording why (the pool counts it when it has stopped). */
  private recycle(c: ClusterRecord, reason: RecycleReason, message: string): void {
    if (!c.pool || c.target > Job.RUNNING) return;
    c.pool.recycled = reason;
    this.requestStop(c, Job.STOPPED, `recycled (${reason}): ${message}`);
  }

  private poolHost(): PoolHost {
    return {
      warmRecords: () => [...this.clusters.values()].filter((c) => c.pool !== undefined),
      keyOf: (config) => this.keyOf(config),
      startWarm: (set, key) => this.startWarm(set, key),
      recycle: (c, reason, message) => this.recycle(c, reason, message),
    };
  }

  private workerLaunch(c: ClusterRecord, w: WorkerRecord): WorkerLaunch {
    return {
      cluster: this.launch(c), clusterState: c.state, workerName: w.name, schedulerAddress: c.schedulerAddress,
      workerCores: c.config.workerCores, workerThreads: c.config.workerThreads, workerMemoryBytes: c.config.workerMemoryBytes,
    };
  }

  private event(c: ClusterRecord, kind: string, message: string, level: "info" | "warn" = "info"): void {
    c.events.push({ time: this.now(), kind, message });
    if (c.events.length > MAX_EVENTS) c.events.splice(0, c.events.length - MAX_EVENTS);
    this.opts.log[level]({ cluster: c.name, user: c.user, event: kind }, message);
  }

  private notifyReady(c: ClusterRecord): void {
    const waiters = this.readyWaiters.get(c.name);
    this.readyWaiters.delete(c.name);
    for (const w of waiters ?? []) w();
  }

  private forget(c: ClusterRecord): void {
    this.clusters.delete(c.name);
    this.opts.store.remove(c.name).catch((err: Error) => this.opts.log.warn({ cluster: c.name, err: err.message }, "could not remove the cluster's record"));
    this.readyWaiters.delete(c.name);
  }

  /** For tests: resolves when no reconciliation is pending. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** For tests: runs the periodic checks once now. */
  runChecks(): Promise<void> {
    return this.checkAll();
  }
}

function isReady(c: ClusterRecord): boolean {
  return c.status >= Job.RUNNING || c.target > Job.RUNNING;
}

const clusterKey = (name: string) => `c/${name}`;
const workerKey = (name: string, worker: string) => `w/${name}/${worker}`;

function hostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:[a-z]+:\/\/)?\[?([^\]/]+?)\]?:(\d+)\/?$/.exec(address);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

async function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${seconds} s`)), seconds * 1000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
