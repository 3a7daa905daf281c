// HTTP load for gateway_bench.py, in Node so that the load generator costs little CPU next to the servers.
//
//   node bench/loadgen.mjs get URL CONCURRENCY SECONDS USER PASSWORD
//       CONCURRENCY clients, each on its own keep-alive connection, GET URL back to back for SECONDS.
//       Like the dask_gateway client, each sends Basic credentials and, once it has one, the session cookie.
//   node bench/loadgen.mjs heartbeats TARGETS_JSON PERIOD SECONDS WARMUP SPREAD
//       Every target ({api_url, name, token}) POSTs a scheduler heartbeat every PERIOD seconds, the first
//       ones spread evenly over SPREAD seconds; one new connection per heartbeat, as the scheduler preload's
//       tornado client does. Heartbeats sent in the first WARMUP seconds are not counted.
//
// Prints one JSON object: counts, achieved rate, latency percentiles in ms, and HTTP statuses seen.
import http from "node:http";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const [mode, ...args] = process.argv.slice(2);

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

function summary(latencies, statuses, errors, seconds) {
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    per_second: latencies.length / seconds,
    p50_ms: percentile(latencies, 50),
    p95_ms: percentile(latencies, 95),
    p99_ms: percentile(latencies, 99),
    over_100ms: latencies.filter((ms) => ms > 100).length,
    max_ms: latencies.length ? latencies[latencies.length - 1] : null,
    statuses,
    loadgen_cpu_percent: (100 * (process.cpuUsage().user + process.cpuUsage().system)) / 1e6 / (performance.now() / 1000),
  };
}

/** One request; resolves with {status, headers} after the body is read, or {error}. */
function request(url, options, body) {
  return new Promise((resolve) => {
    const req = http.request(url, options, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers }));
      res.on("error", (err) => resolve({ error: err.code ?? err.message }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ error: err.code ?? err.message }));
    req.end(body);
  });
}

async function get([url, concurrency, seconds, user, password]) {
  const basic = "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
  const latencies = [];
  const statuses = {};
  let errors = 0;
  const start = performance.now();
  const end = start + Number(seconds) * 1000;
  async function client() {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let cookie = null;
    while (performance.now() < end) {
      const headers = { Authorization: basic, ...(cookie ? { Cookie: cookie } : {}) };
      const t0 = performance.now();
      const res = await request(url, { agent, headers });
      const ms = performance.now() - t0;
      if (res.error || res.status !== 200) {
        errors++;
        statuses[res.error ?? res.status] = (statuses[res.error ?? res.status] ?? 0) + 1;
        if (res.error) await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      statuses[200] = (statuses[200] ?? 0) + 1;
      latencies.push(ms);
      const set = res.headers["set-cookie"];
      if (set && set.length) cookie = set.map((c) => c.split(";")[0]).join("; ");
    }
    agent.destroy();
  }
  await Promise.all(Array.from({ length: Number(concurrency) }, client));
  return summary(latencies, statuses, errors, (performance.now() - start) / 1000);
}

async function heartbeats([targetsFile, period, seconds, warmup, spread]) {
  const targets = JSON.parse(readFileSync(targetsFile, "utf8"));
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const body = JSON.stringify({
    scheduler_address: "tls://127.0.0.1:9", dashboard_address: "", api_address: "http://127.0.0.1:9",
    count: 0, active_workers: [], closing_workers: [], closed_workers: [],
  });
  const latencies = [];
  const statuses = {};
  let errors = 0;
  const start = performance.now();
  const countFrom = start + Number(warmup) * 1000;
  const end = start + Number(seconds) * 1000;
  const inflight = new Set();
  const slow = []; // [seconds after the warm-up, ms] of each heartbeat slower than 100 ms: when the stalls happen
  async function beat(t) {
    const t0 = performance.now();
    const res = await request(`${t.api_url}/v1/clusters/${t.name}/heartbeat`, {
      method: "POST", agent,
      headers: { Authorization: `token ${t.token}`, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
    }, body);
    if (t0 < countFrom) return;
    const key = res.error ?? res.status;
    statuses[key] = (statuses[key] ?? 0) + 1;
    const ms = performance.now() - t0;
    if (res.error || res.status !== 200) errors++;
    else latencies.push(ms);
    if (ms > 100 && slow.length < 2000) slow.push([Math.round(t0 - countFrom) / 1000, Math.round(ms)]);
  }
  const timers = targets.map((t, i) => {
    const first = (i / targets.length) * Number(spread) * 1000;
    return setTimeout(function tick() {
      if (performance.now() >= end) return;
      const p = beat(t);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      timers[i] = setTimeout(tick, Number(period) * 1000);
    }, first);
  });
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  for (const t of timers) clearTimeout(t);
  await Promise.all(inflight);
  return { targets: targets.length, ...summary(latencies, statuses, errors, Math.max(0.001, (end - countFrom) / 1000)), slow };
}

const modes = { get, heartbeats };
if (!modes[mode]) {
  console.error("usage: loadgen.mjs get|heartbeats ...");
  process.exit(2);
}
console.log(JSON.stringify(await modes[mode](args)));
