/** "My clusters": a live table of the user's clusters; also the admins' table of everyone's (with a User column). */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { UiCluster } from "./api.js";
import { formatBytes, formatCores, formatDuration, formatOptions, formatTime, shortName } from "./format.js";
import { useLiveClusters, useNow } from "./live.js";
import { Empty, ErrorBox, LiveNote, StatusBadge, StopButton } from "./widgets.js";

const ACTIVE = new Set(["PENDING", "RUNNING", "STOPPING"]);

export function ClusterList() {
  const live = useLiveClusters("mine");
  return (
    <section aria-labelledby="clusters-title">
      <div class="heading">
        <h1 id="clusters-title">My clusters</h1>
        <a class="button" href="#/new">New cluster</a>
      </div>
      <ClusterTable live={live} showUser={false} empty={<>You have no clusters. <a href="#/new">Create one</a>, or from Python: <code>Gateway(address).new_cluster()</code>.</>} />
    </section>
  );
}

/** The table with a filter (active only, or stopped and failed too), fed by the live stream. */
export function ClusterTable(props: { live: ReturnType<typeof useLiveClusters>; showUser: boolean; empty: ComponentChildren }) {
  const [showEnded, setShowEnded] = useState(false);
  const now = useNow();
  const { clusters, error } = props.live;
  const shown = (clusters ?? []).filter((c) => showEnded || ACTIVE.has(c.status));
  const ended = (clusters ?? []).length - (clusters ?? []).filter((c) => ACTIVE.has(c.status)).length;
  return (
    <>
      <div class="toolbar">
        <label class="check">
          <input type="checkbox" checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} />
          Show stopped and failed ({ended})
        </label>
        <LiveNote live={props.live} />
      </div>
      {clusters === null && !error && <p class="muted">Loading clusters…</p>}
      {clusters === null && error && <ErrorBox title="Cannot load clusters" message={error} />}
      {clusters !== null && shown.length === 0 && <Empty>{clusters.length ? "No active clusters. Tick the box above to see stopped and failed ones." : props.empty}</Empty>}
      {shown.length > 0 && (
        <div class="table-wrap">
          <table class="clusters">
            <thead>
              <tr>
                <th scope="col">Name</th>
                {props.showUser && <th scope="col">User</th>}
                <th scope="col">Status</th>
                <th scope="col">Workers <span class="sub">live of requested</span></th>
                <th scope="col">Cores</th>
                <th scope="col">Memory</th>
                <th scope="col">Options</th>
                <th scope="col">Created</th>
                <th scope="col">Uptime</th>
                <th scope="col">Time left</th>
                <th scope="col"><span class="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {shown.map((c) => <Row key={c.name} c={c} now={now} showUser={props.showUser} />)}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function Row(props: { c: UiCluster; now: number; showUser: boolean }) {
  const { c, now } = props;
  const end = c.stopTime ?? now;
  return (
    <tr data-cluster={c.name}>
      <td data-label="Name"><a href={`#/clusters/${c.name}`} title={c.name}><code>{shortName(c.name)}</code></a></td>
      {props.showUser && <td data-label="User">{c.user}</td>}
      <td data-label="Status">
        <span><StatusBadge status={c.status} />{c.reason && c.status !== "RUNNING" && <span class="reason" title={c.reason}>{c.reason}</span>}</span>
      </td>
      <td data-label="Workers" class="workers">
        <span title={`${c.workers.connected} connected to the scheduler, ${c.workers.requested} requested`}>
          <span class="connected">{c.workers.connected}</span> of {c.workers.requested}
          {c.workers.starting > 0 && <span class="muted"> ({c.workers.starting} starting)</span>}
        </span>
      </td>
      <td data-label="Cores">{formatCores(c.cores)}</td>
      <td data-label="Memory">{formatBytes(c.memoryBytes)}</td>
      <td data-label="Options" class="options">{formatOptions(c.options) || "defaults"}</td>
      <td data-label="Created">{formatTime(c.createdAt)}</td>
      <td data-label="Uptime">{formatDuration(end - c.createdAt)}</td>
      <td data-label="Time left">{timeLeft(c, now)}</td>
      <td class="row-actions">
        <a href={`#/clusters/${c.name}/logs/scheduler`}>Logs</a>
        {c.dashboard && <a href={`clusters/${c.name}/status`} target="_blank" rel="noopener">Dashboard</a>}
        {ACTIVE.has(c.status) && <StopButton name={c.name} user={props.showUser ? c.user : undefined} disabled={c.status === "STOPPING"} />}
      </td>
    </tr>
  );
}

/** The orphan timeout counts down while no client is connected; the idle timeout is the scheduler's own clock. */
export function timeLeft(c: UiCluster, now: number): string {
  if (!ACTIVE.has(c.status)) return "—";
  const parts: string[] = [];
  if (c.orphanDeadline !== null) parts.push(`orphan: ${formatDuration(c.orphanDeadline - now)}`);
  else if (c.orphanTimeout > 0) parts.push("orphan: client connected");
  if (c.idleTimeout > 0) parts.push(`idle: ≤ ${formatDuration(c.idleTimeout * 1000)}`);
  return parts.join("; ") || "no timeout";
}
