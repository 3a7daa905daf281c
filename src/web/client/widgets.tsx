/** Small pieces shared by the screens: status badges, empty and error states, the stop confirmation, copy. */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "./api.js";
import { shortName } from "./format.js";
import type { LiveState } from "./live.js";

export function StatusBadge(props: { status: string }) {
  return <span class={`status status-${props.status.toLowerCase()}`}>{props.status}</span>;
}

/** Whether the page is live, paused (tab hidden) or reconnecting. */
export function LiveNote(props: { live: LiveState }) {
  const { clusters, error, paused } = props.live;
  return <span class="live" role="status">{paused ? "Updates paused while the tab is hidden" : error ? error : clusters ? "Live" : "Connecting…"}</span>;
}

export function ErrorBox(props: { title: string; message: string; children?: ComponentChildren }) {
  return (
    <div class="box error-box" role="alert">
      <strong>{props.title}</strong>
      <p>{props.message}</p>
      {props.children}
    </div>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <div class="box empty">{props.children}</div>;
}

/**
 * A Stop button whose confirmation dialog names the cluster (and its owner when it is someone else's).
 * The dialog is modal: Escape or Cancel closes it, focus starts on Cancel.
 */
export function StopButton(props: { name: string; user?: string; disabled?: boolean; onStopped?: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const open = () => {
    setError(null);
    dialog.current?.showModal();
  };
  const stop = async () => {
    setBusy(true);
    try {
      await api("DELETE", `api/v1/clusters/${encodeURIComponent(props.name)}`);
      dialog.current?.close();
      props.onStopped?.();
    } catch (err) {
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="danger" disabled={props.disabled} onClick={open} aria-label={`Stop cluster ${props.name}`}>Stop</button>
      <dialog ref={dialog} class="confirm" aria-labelledby={`stop-title-${props.name}`}>
        <h2 id={`stop-title-${props.name}`}>Stop cluster {shortName(props.name)}?</h2>
        <p>
          Cluster <code class="name">{props.name}</code>
          {props.user ? <> of user <strong>{props.user}</strong></> : null} and all its workers will stop. Work in progress is lost.
        </p>
        {error && <p class="error" role="alert">{error}</p>}
        <div class="actions">
          <button type="button" autoFocus onClick={() => dialog.current?.close()}>Cancel</button>
          <button type="button" class="danger" disabled={busy} onClick={stop}>Stop {shortName(props.name)}</button>
        </div>
      </dialog>
    </>
  );
}

/** Copies a text; falls back to selecting it where the clipboard API is unavailable (plain HTTP). */
export function CopyButton(props: { text: string; label: string }) {
  const [done, setDone] = useState<string | null>(null);
  useEffect(() => {
    if (!done) return;
    const timer = setTimeout(() => setDone(null), 2000);
    return () => clearTimeout(timer);
  }, [done]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setDone("Copied");
    } catch {
      const area = document.createElement("textarea");
      area.value = props.text;
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      setDone(ok ? "Copied" : "Select the text and copy it");
    }
  };
  return (
    <span class="copy">
      <button type="button" onClick={copy}>{props.label}</button>
      <span role="status" class="copied">{done ?? ""}</span>
    </span>
  );
}
