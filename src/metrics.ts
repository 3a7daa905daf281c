/**
 * Prometheus metrics of the gateway (served at /api/metrics): requests, clusters, relayed connections.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
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

  /** `clusterCounts` is read at each scrape, so the gauge never drifts from the manager's records. */
  constructor(clusterCounts: () => Record<string, number>) {
    this.clusters = new Gauge({
      name: "dask_gateway_clusters",
      help: "Clusters known to the gateway, by public status.",
      labelNames: ["status"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [status, n] of Object.entries(clusterCounts())) this.set({ status }, n);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: "dask_gateway_" });
  }
}
