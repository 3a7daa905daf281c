/**
 * One cluster: its facts (live), its lifecycle events with the reason of a stop or failure, the dashboard and
 * log links, scale, adapt and stop, and a "connect from Python" snippet.
 */
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type ClusterEvents, type SessionUser } from "./api.js";
import { timeLeft } from "./clusters.js";
import { formatBytes, formatCores, formatDuration, formatOptions, formatTime } from "./format.js";
import { useLiveClusters, useNow } from "./live.js";
import { CopyButton, Empty, ErrorBox, LiveNote, StatusBadge, StopButton } from "./widgets.js";

export function ClusterDetails(props: { name: string; user: SessionUser }) {
  const live = useLiveClusters(props.user.admin ? "all" : "mine");
  const now = useNow();
  const c = live.clusters?.find((x) => x.name === props.name);
  const [events, setEvents] = useState<ClusterEvents | null>(null);
  const [eventsError, setEventsError] = useState<string | null>(null);
  const version = c ? `${c.status}/${c.workers.connected}/${c.workers.requested}/${c.reason}` : "";

  useEffect(() => {
    api<ClusterEvents>("GET", `api/v1/clusters/${encodeURIComponent(props.name)}/events`).then(
      (e) => { setEvents(e); setEventsError(null); },
      (err: ApiError) => setEventsError(err.message),
    );
  }, [props.name, version]);

  if (live.clusters === null) return <p class="muted">Loading…</p>;
  if (!c) {
    return (
      <ErrorBox title="Cluster not found" message={eventsError ?? `No cluster ${props.name} is visible to you. It may have stopped longer ago than the retention period.`}>
        <p><a href="#/">Back to my clusters</a></p>
      </ErrorBox>
    );
  }
  const active = ["PENDING", "RUNNING", "STOPPING"].includes(c.status);
  const address = new URL(".", location.href).href.replace(/\/$/, "");
  const snippet = `from dask_gateway import Gateway\n\ngateway = Gateway("${address}")\ncluster = gateway.connect("${c.name}")\nclient = cluster.get_client()`;
  return (
    <section aria-labelledby="details-title">
      <p class="crumbs"><a href="#/">My clusters</a> › cluster</p>
      <div class="heading start">
        <h1 id="details-title">Cluster <code class="name">{c.name}</code></h1>
        <StatusBadge status={c.status} />
        <LiveNote live={live} />
      </div>
      {c.reason && <p class={c.status === "FAILED" ? "error reason-line" : "reason-line"}><strong>{c.status === "FAILED" ? "Failed: " : "Reason: "}</strong>{c.reason}</p>}
      <div class="links">
        {c.dashboard ? <a class="button" href={`clusters/${c.name}/status`} target="_blank" rel="noopener">Open dashboard</a> : <span class="muted">Dashboard: when running</span>}
        <a class="button" href={`#/clusters/${c.name}/logs/scheduler`}>Logs</a>
        {active && <StopButton name={c.name} user={c.user !== props.user.name ? c.user : undefined} disabled={c.status === "STOPPING"} />}
      </div>
      <dl class="facts">
        <dt>Owner</dt><dd>{c.user}</dd>
        <dt>Workers</dt><dd><span class="connected" data-testid="workers-connected">{c.workers.connected}</span> connected of {c.workers.requested} requested{c.workers.starting ? `, ${c.workers.starting} starting` : ""}</dd>
        <dt>Cores</dt><dd>{formatCores(c.cores)} (the scheduler's and {formatCores(c.workerCores)} per connected worker)</dd>
        <dt>Memory</dt><dd>{formatBytes(c.memoryBytes)} (the scheduler's and {formatBytes(c.workerMemoryBytes)} per connected worker)</dd>
        <dt>Options</dt><dd class="options">{formatOptions(c.options) || "defaults"}</dd>
        <dt>Created</dt><dd>{formatTime(c.createdAt)}</dd>
        <dt>{c.stopTime ? "Ran for" : "Uptime"}</dt><dd>{formatDuration((c.stopTime ?? now) - c.createdAt)}</dd>
        <dt>Time left</dt><dd>{timeLeft(c, now)}</dd>
      </dl>
      {c.status === "RUNNING" && <ScaleControls name={c.name} requested={c.workers.requested} />}
      <h2>Connect from Python</h2>
      <pre class="snippet"><code>{snippet}</code></pre>
      <CopyButton text={snippet} label="Copy snippet" />
      <h2>Events</h2>
      {eventsError && <ErrorBox title="Cannot load events" message={eventsError} />}
      {events && events.events.length === 0 && <Empty>No events recorded by this gateway run (events are kept in memory only).</Empty>}
      {events && events.events.length > 0 && (
        <ol class="events">
          {events.events.map((e, i) => (
            <li key={i} class={`event event-${e.kind}`}>
              <time dateTime={new Date(e.time).toISOString()}>{formatTime(e.time)}</time>
              <span class="kind">{e.kind}</span>
              <span class="message">{e.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function ScaleControls(props: { name: string; requested: number }) {
  const [count, setCount] = useState(String(props.requested));
  const [min, setMin] = useState("0");
  const [max, setMax] = useState("2");
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const path = `api/v1/clusters/${encodeURIComponent(props.name)}`;
  const send = async (what: string, op: () => Promise<{ ok: boolean; msg: string | null }>) => {
    try {
      const answer = await op();
      setMessage({ text: answer.msg ?? `${what} sent`, error: !answer.ok });
    } catch (err) {
      setMessage({ text: (err as ApiError).message, error: true });
    }
  };
  return (
    <div class="controls">
      <form class="inline" onSubmit={(e) => { e.preventDefault(); void send("Scale", () => api("POST", `${path}/scale`, { count: Number(count) })); }}>
        <label for="scale-count">Workers</label>
        <input id="scale-count" type="number" min="0" step="1" value={count} onInput={(e) => setCount(e.currentTarget.value)} />
        <button type="submit">Scale</button>
      </form>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); void send("Adapt", () => api("POST", `${path}/adapt`, { minimum: Number(min), maximum: Number(max), active: true })); }}>
        <label for="adapt-min">Adapt from</label>
        <input id="adapt-min" type="number" min="0" step="1" value={min} onInput={(e) => setMin(e.currentTarget.value)} />
        <label for="adapt-max">to</label>
        <input id="adapt-max" type="number" min="0" step="1" value={max} onInput={(e) => setMax(e.currentTarget.value)} />
        <button type="submit">Adapt</button>
      </form>
      {message && <p class={message.error ? "error" : "ok"} role="status">{message.text}</p>}
    </div>
  );
}
