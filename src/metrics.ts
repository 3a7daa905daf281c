/**
 * Prometheus metrics of the gateway (served at /api/metrics): requests, clusters, relayed connections, failed
 * sign-ins, the warm pool.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ClaimResult, PoolCount, PoolMetrics } from "./clusters/pool.js";
import type { RecycleReason } from "./clusters/model.js";

export class Metrics implements PoolMetrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: "dask_gateway_http_requests_total",
    help: "HTTP requests answered, by method, route and status.",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "dask_gateway_http_request_duration_seconds",
    help: "Time to answer HTTP requests (long polls included).",
    labelNames: ["route"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 20],
    registers: [this.registry],
  });
  readonly clusters: Gauge<"status">;
  readonly connections = new Counter({
    name: "dask_gateway_connections_total",
    help: "Connections accepted on the public port, by outcome.",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: "dask_gateway_auth_failures_total",
    help: "Passwords checked and found wrong (API, dashboards, the page's sign-in).",
    registers: [this.registry],
  });
  readonly authThrottled = new Counter({
    name: "dask_gateway_auth_throttled_total",
    help: "Sign-in attempts refused with 429 without a password check: their client address failed auth.max_failures times for that user name.",
    registers: [this.registry],
  });
  readonly poolSchedulers: Gauge<"key" | "state">;
  readonly poolClaims = new Counter({
    name: "dask_gateway_pool_claims_total",
    help: "Cluster creations by how the warm pool served them: hit (a warm scheduler), miss (started cold), refused (a limit or bad options: nothing used).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly poolClaimSeconds = new Histogram({
    name: "dask_gateway_pool_claim_seconds",
    help: "Time from a create request to its answer, by claim result (a hit answers with a RUNNING cluster).",
    labelNames: ["result"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly poolRecycled = new Counter({
    name: "dask_gateway_pool_recycled_total",
    help: "Warm schedulers stopped and replaced, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** `clusterCounts` and `poolCounts` are read at each scrape, so the gauges never drift from the records. */
  constructor(clusterCounts: () => Record<string, number>, poolCounts: () => PoolCount[] = () => []) {
    this.clusters = new Gauge({
      name: "dask_gateway_clusters",
      help: "Clusters known to the gateway, by public status (the pool's warm schedulers are not clusters yet).",
      labelNames: ["status"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [status, n] of Object.entries(clusterCounts())) this.set({ status }, n);
      },
    });
    this.poolSchedulers = new Gauge({
      name: "dask_gateway_pool_schedulers",
      help: "Warm schedulers of the pool, by pool key and state (ready to be claimed, or starting).",
      labelNames: ["key", "state"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { key, ready, starting } of poolCounts()) {
          this.set({ key, state: "ready" }, ready);
          this.set({ key, state: "starting" }, starting);
        }
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: "dask_gateway_" });
  }

  claim(result: ClaimResult, seconds: number): void {
    this.poolClaims.inc({ result });
    this.poolClaimSeconds.observe({ result }, seconds);
  }

  recycled(reason: RecycleReason): void {
    this.poolRecycled.inc({ reason });
  }
}
