/** The operators' view: every user's clusters (with stop), the nodes, the warm pool, and usage per user. */
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type NodeInfo, type PoolInfo, type UsageReport } from "./api.js";
import { ClusterTable } from "./clusters.js";
import { formatBytes, formatCores } from "./format.js";
import { useLiveClusters } from "./live.js";
import { Empty, ErrorBox } from "./widgets.js";

export function AdminView() {
  const live = useLiveClusters("all");
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Operators</h1>
      <h2>All clusters</h2>
      <ClusterTable live={live} showUser={true} empty="No user has a cluster." />
      <Nodes />
      <Pool />
      <Usage />
    </section>
  );
}

/** Loads a JSON endpoint once (and again when `key` changes). */
function useJson<T>(path: string): { data: T | null; error: string | null } {
  const [state, setState] = useState<{ data: T | null; error: string | null }>({ data: null, error: null });
  useEffect(() => {
    setState({ data: null, error: null });
    api<T>("GET", path).then((data) => setState({ data, error: null }), (err: ApiError) => setState({ data: null, error: err.message }));
  }, [path]);
  return state;
}

function Nodes() {
  const { data, error } = useJson<{ backend: string; nodes: NodeInfo[] }>("api/v1/admin/nodes");
  return (
    <>
      <h2>Nodes {data && <span class="muted">({data.backend} backend)</span>}</h2>
      {error && <ErrorBox title="Cannot list the nodes" message={error} />}
      {data && data.nodes.length === 0 && <Empty>The backend reports no nodes.</Empty>}
      {data && data.nodes.length > 0 && (
        <div class="table-wrap">
          <table class="nodes">
            <thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Availability</th><th scope="col">Cores</th><th scope="col">Memory</th><th scope="col">Schedulers</th><th scope="col">Workers</th></tr></thead>
            <tbody>
              {data.nodes.map((n) => (
                <tr key={n.name}>
                  <td data-label="Node">{n.name}</td>
                  <td data-label="Role">{n.role}</td>
                  <td data-label="State"><span class={`status status-${n.state === "ready" ? "running" : "failed"}`}>{n.state}</span></td>
                  <td data-label="Availability">{n.availability}</td>
                  <td data-label="Cores">{formatCores(n.cores)}</td>
                  <td data-label="Memory">{formatBytes(n.memoryBytes)}</td>
                  <td data-label="Schedulers">{n.schedulers ?? "—"}</td>
                  <td data-label="Workers">{n.workers ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function Pool() {
  const { data, error } = useJson<PoolInfo>("api/v1/admin/pool");
  return (
    <>
      <h2>Warm pool</h2>
      {error && <ErrorBox title="Cannot read the pool" message={error} />}
      {data && !data.enabled && <Empty>The warm pool is off (pool.size is 0): every cluster starts cold.</Empty>}
      {data && data.enabled && (
        <>
          <p>{data.size} warm scheduler(s) per option set; each is replaced after {data.max_age ? `${data.max_age} s` : "never"}.</p>
          <div class="table-wrap">
            <table class="pool">
              <thead><tr><th scope="col">Option set</th><th scope="col">Pool key</th><th scope="col">Ready</th><th scope="col">Starting</th></tr></thead>
              <tbody>
                {data.keys.map((k, i) => (
                  <tr key={k.key}>
                    <td data-label="Option set"><code>{JSON.stringify(data.option_sets[i] ?? {})}</code></td>
                    <td data-label="Pool key"><code>{k.key.slice(0, 12)}</code></td>
                    <td data-label="Ready">{k.ready}</td>
                    <td data-label="Starting">{k.starting}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function Usage() {
  const [from, setFrom] = useState(isoDay(Date.now() - 7 * 86_400_000));
  const [to, setTo] = useState(isoDay(Date.now() + 86_400_000));
  const { data, error } = useJson<UsageReport>(`api/v1/admin/usage?from=${from}&to=${to}`);
  return (
    <>
      <h2>Usage per user</h2>
      <form class="inline" onSubmit={(e) => e.preventDefault()}>
        <label for="usage-from">From</label>
        <input id="usage-from" type="date" value={from} onChange={(e) => e.currentTarget.value && setFrom(e.currentTarget.value)} />
        <label for="usage-to">to (exclusive)</label>
        <input id="usage-to" type="date" value={to} onChange={(e) => e.currentTarget.value && setTo(e.currentTarget.value)} />
      </form>
      {error && <ErrorBox title="Cannot compute usage" message={error} />}
      {data && data.users.length === 0 && <Empty>No cluster ran in this period (as far as this gateway recorded).</Empty>}
      {data && data.users.length > 0 && (
        <div class="table-wrap">
          <table class="usage">
            <thead><tr><th scope="col">User</th><th scope="col">Core-hours</th><th scope="col">Cluster-hours</th></tr></thead>
            <tbody>
              {data.users.map((u) => (
                <tr key={u.user}><td data-label="User">{u.user}</td><td data-label="Core-hours">{u.coreHours.toFixed(2)}</td><td data-label="Cluster-hours">{u.clusterHours.toFixed(2)}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="hint">Measured every 30 s from the gateway's own records (the scheduler's cores plus its connected workers'); time while the gateway was down is not counted.</p>
    </>
  );
}
