/**
 * The log viewer: the scheduler's and each worker's log, with timestamps (which can be hidden) and follow mode.
 * A followed log is read as a stream; the view keeps the last MAX_LINES lines, so a chatty worker cannot fill the
 * tab's memory. Leaving the screen (or switching component) aborts the request, which ends it on the gateway.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type LogComponentInfo } from "./api.js";
import { shortName } from "./format.js";
import { Empty, ErrorBox } from "./widgets.js";

const MAX_LINES = 5000;

interface LogLine {
  time: string;
  text: string;
}

export function LogViewer(props: { cluster: string; component: string }) {
  const [components, setComponents] = useState<LogComponentInfo[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [tail, setTail] = useState("500");
  const [follow, setFollow] = useState(true);
  const [stamps, setStamps] = useState(true);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<{ status: "loading" | "streaming" | "done" | "error"; message?: string }>({ status: "loading" });
  const pre = useRef<HTMLDivElement>(null);
  const base = `api/v1/clusters/${encodeURIComponent(props.cluster)}/logs`;

  useEffect(() => {
    api<{ components: LogComponentInfo[] }>("GET", base).then((a) => setComponents(a.components), (err: ApiError) => setListError(err.message));
  }, [base]);

  useEffect(() => {
    const abort = new AbortController();
    setLines([]);
    setState({ status: "loading" });
    void stream(`${base}/${encodeURIComponent(props.component)}?tail=${tail}${follow ? "&follow=1" : ""}`, abort.signal, (batch) => {
      setLines((old) => {
        const next = old.concat(batch);
        return next.length > MAX_LINES ? next.slice(next.length - MAX_LINES) : next;
      });
      setState((s) => (s.status === "loading" ? { status: "streaming" } : s));
    }).then(
      () => setState({ status: "done" }),
      (err: Error) => { if (!abort.signal.aborted) setState({ status: "error", message: err.message }); },
    );
    return () => abort.abort();
  }, [base, props.component, tail, follow]);

  useEffect(() => {
    const el = pre.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines, follow]);

  const current = components?.find((c) => c.name === props.component);
  return (
    <section aria-labelledby="logs-title">
      <p class="crumbs"><a href="#/">My clusters</a> › <a href={`#/clusters/${props.cluster}`}>cluster {shortName(props.cluster)}</a> › logs</p>
      <h1 id="logs-title">Logs: {props.component === "scheduler" ? "scheduler" : `worker ${shortName(props.component)}`}</h1>
      {listError && <ErrorBox title="Cannot list the logs" message={listError} />}
      {components && components.length === 0 && <Empty>This cluster has no logs (any more).</Empty>}
      {components && components.length > 0 && (
        <nav class="components" aria-label="Components">
          {components.map((c) => (
            <a key={c.name} href={`#/clusters/${props.cluster}/logs/${c.name}`} aria-current={c.name === props.component ? "page" : undefined} class={c.live ? "live" : "ended"}>
              {c.kind === "scheduler" ? "scheduler" : `worker ${shortName(c.name)}`}
              {!c.live && <span class="muted"> ({c.kept ? "kept copy" : "ended"})</span>}
            </a>
          ))}
        </nav>
      )}
      <div class="toolbar">
        <label for="log-tail">Lines</label>
        <select id="log-tail" value={tail} onChange={(e) => setTail(e.currentTarget.value)}>
          <option value="100">last 100</option>
          <option value="500">last 500</option>
          <option value="5000">last 5000</option>
        </select>
        <label class="check"><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} disabled={current !== undefined && !current.live} /> Follow</label>
        <label class="check"><input type="checkbox" checked={stamps} onChange={(e) => setStamps(e.currentTarget.checked)} /> Timestamps</label>
        <span class="live" role="status">{describe(state, follow)}</span>
      </div>
      {state.status === "error" && <ErrorBox title="Cannot read this log" message={state.message ?? ""} />}
      <div class={`log${stamps ? "" : " no-stamps"}`} ref={pre} tabIndex={0} aria-label="Log lines" data-testid="log">
        {lines.length === 0 && state.status !== "loading" && state.status !== "error" && <p class="muted">No lines yet.</p>}
        {lines.map((l, i) => (
          <div key={i} class="line"><time>{l.time}</time> <span>{l.text}</span></div>
        ))}
      </div>
    </section>
  );
}

function describe(state: { status: string }, follow: boolean): string {
  if (state.status === "loading") return "Loading…";
  if (state.status === "streaming") return follow ? "Following" : "Reading…";
  if (state.status === "done") return follow ? "Ended: the component stopped" : "Complete";
  return "";
}

/** Reads a log response as it arrives and hands over whole lines in batches. */
async function stream(url: string, signal: AbortSignal, onLines: (lines: LogLine[]) => void): Promise<void> {
  const res = await fetch(url, { headers: { "X-DGW-Page": "1" }, credentials: "same-origin", signal, cache: "no-store" });
  if (!res.ok) {
    const text = await res.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { error: string }).error;
    } catch {
      // plain text
    }
    throw new Error(message || res.statusText);
  }
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let partial = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const parts = (partial + value).split("\n");
    partial = parts.pop()!;
    onLines(parts.map(split));
  }
  if (partial) onLines([split(partial)]);
}

function split(line: string): LogLine {
  const space = line.indexOf(" ");
  return space > 0 ? { time: line.slice(0, space), text: line.slice(space + 1) } : { time: "", text: line };
}
