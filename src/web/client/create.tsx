/**
 * The create form, generated from GET api/v1/options: one input per option of each of the six types (int, float,
 * string, bool, select, mapping). The gateway validates; a 422 is shown at the field its message names (or above
 * the form when it names none), and that field gets the focus.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type OptionField } from "./api.js";
import { ErrorBox } from "./widgets.js";

type Values = Record<string, string | boolean>;

export function CreateForm() {
  const [fields, setFields] = useState<OptionField[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [values, setValues] = useState<Values>({});
  const [error, setError] = useState<{ field: string | null; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);

  useEffect(() => {
    api<{ cluster_options: OptionField[] }>("GET", "api/v1/options").then((answer) => {
      setFields(answer.cluster_options);
      setValues(Object.fromEntries(answer.cluster_options.map((f) => [f.field, initial(f)])));
    }, (err: ApiError) => setLoadError(err.message));
  }, []);

  useEffect(() => {
    if (error?.field) form.current?.querySelector<HTMLElement>(`#opt-${error.field}`)?.focus();
  }, [error]);

  if (loadError) return <ErrorBox title="Cannot load the cluster options" message={loadError} />;
  if (!fields) return <p class="muted">Loading options…</p>;

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    let options: Record<string, unknown>;
    try {
      options = Object.fromEntries(fields.map((f) => [f.field, toValue(f, values[f.field]!)]));
    } catch (err) {
      setError(err as FieldError);
      return;
    }
    setBusy(true);
    try {
      const created = await api<{ name: string }>("POST", "api/v1/clusters/", { cluster_options: options });
      location.hash = `#/clusters/${created.name}`;
    } catch (err) {
      const message = (err as ApiError).message;
      setError({ field: fields.find((f) => new RegExp(`\\b${f.field}\\b`).test(message))?.field ?? null, message });
      setBusy(false);
    }
  };

  const set = (field: string, value: string | boolean) => setValues({ ...values, [field]: value });
  return (
    <section aria-labelledby="create-title">
      <h1 id="create-title">New cluster</h1>
      <form ref={form} onSubmit={submit} noValidate class="options-form">
        {error && !error.field && <p class="error" role="alert">{error.message}</p>}
        {fields.length === 0 && <p class="muted">This gateway defines no options: the cluster gets the defaults.</p>}
        {fields.map((f) => (
          <Field key={f.field} f={f} value={values[f.field]!} error={error?.field === f.field ? error.message : null} onChange={(v) => set(f.field, v)} />
        ))}
        <div class="actions">
          <button type="submit" disabled={busy}>{busy ? "Creating…" : "Create cluster"}</button>
          <a href="#/">Cancel</a>
        </div>
      </form>
    </section>
  );
}

function Field(props: { f: OptionField; value: string | boolean; error: string | null; onChange: (v: string | boolean) => void }) {
  const { f, value, error } = props;
  const id = `opt-${f.field}`;
  const describedBy = error ? `${id}-error` : `${id}-hint`;
  const common = { id, name: f.field, "aria-invalid": error ? ("true" as const) : undefined, "aria-describedby": describedBy };
  let input;
  switch (f.spec.type) {
    case "bool":
      input = <input type="checkbox" {...common} checked={value === true} onChange={(e) => props.onChange(e.currentTarget.checked)} />;
      break;
    case "select":
      input = (
        <select {...common} value={String(value)} onChange={(e) => props.onChange(e.currentTarget.value)}>
          {(f.spec.options ?? []).map((o) => <option key={o} value={o}>{o}</option>)}
        </select>
      );
      break;
    case "mapping":
      input = <textarea {...common} rows={3} value={String(value)} onInput={(e) => props.onChange(e.currentTarget.value)} />;
      break;
    case "int":
    case "float":
      input = (
        <input type="number" inputMode={f.spec.type === "int" ? "numeric" : "decimal"} step={f.spec.type === "int" ? "1" : "any"} {...common}
          min={f.spec.min ?? undefined} max={f.spec.max ?? undefined} value={String(value)} onInput={(e) => props.onChange(e.currentTarget.value)} />
      );
      break;
    default:
      input = <input type="text" {...common} value={String(value)} onInput={(e) => props.onChange(e.currentTarget.value)} />;
  }
  return (
    <div class={`field field-${f.spec.type}${error ? " invalid" : ""}`}>
      <label for={id}>{f.label}</label>
      {input}
      <small id={`${id}-hint`} class="hint">{hint(f)}</small>
      {error && <p id={`${id}-error`} class="error" role="alert">{error}</p>}
    </div>
  );
}

function hint(f: OptionField): string {
  const { type, min, max } = f.spec;
  if (type === "int" || type === "float") {
    const range = [min != null ? `at least ${min}` : "", max != null ? `at most ${max}` : ""].filter(Boolean).join(", ");
    return `${type === "int" ? "Whole number" : "Number"}${range ? `, ${range}` : ""}.`;
  }
  if (type === "mapping") return "One NAME=value per line.";
  if (type === "select") return "Choose one.";
  if (type === "bool") return "On or off.";
  return "Text.";
}

function initial(f: OptionField): string | boolean {
  if (f.spec.type === "bool") return f.default === true;
  if (f.spec.type === "mapping") return Object.entries((f.default ?? {}) as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`).join("\n");
  return f.default === null || f.default === undefined ? "" : String(f.default);
}

interface FieldError {
  field: string;
  message: string;
}

/** The JSON value of an input; numbers that do not parse are sent as text, so the gateway names the problem. */
function toValue(f: OptionField, value: string | boolean): unknown {
  switch (f.spec.type) {
    case "bool":
      return value === true;
    case "int":
    case "float": {
      const text = String(value).trim();
      const n = Number(text);
      return text !== "" && Number.isFinite(n) ? n : text;
    }
    case "mapping": {
      const entries: Array<[string, string]> = [];
      for (const line of String(value).split("\n").map((l) => l.trim()).filter(Boolean)) {
        const eq = line.indexOf("=");
        if (eq <= 0) throw { field: f.field, message: `${f.field}: each line must be NAME=value, got '${line}'` } satisfies FieldError;
        entries.push([line.slice(0, eq).trim(), line.slice(eq + 1)]);
      }
      return Object.fromEntries(entries);
    }
    default:
      return String(value);
  }
}
