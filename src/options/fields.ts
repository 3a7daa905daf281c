/**
 * The six kinds of cluster option (reference section 3): their specification JSON, and validation of
 * users' values with the reference's exact error texts (the client shows them as ValueError).
 */

interface Base {
  field: string;
  label?: string;
  /** Cluster setting the value goes to; defaults to the field name. */
  target?: string;
}

export type SelectOption = string | { key: string; value: unknown };

export type FieldDefinition =
  | (Base & { type: "string"; default?: string })
  | (Base & { type: "bool"; default?: boolean })
  | (Base & { type: "int"; default?: number; min?: number | null; max?: number | null })
  | (Base & { type: "float"; default?: number; min?: number | null; max?: number | null })
  | (Base & { type: "select"; default?: string; options: SelectOption[] })
  | (Base & { type: "mapping"; default?: Record<string, unknown> });

export type ParseResult =
  | { ok: true; options: Record<string, unknown>; config: Record<string, unknown> }
  | { ok: false; error: string };

const TYPES = ["string", "bool", "int", "float", "select", "mapping"] as const;

/** The default value of a field, with the reference's implicit defaults. */
export function defaultValue(def: FieldDefinition): unknown {
  if (def.default !== undefined) return def.default;
  switch (def.type) {
    case "string": return "";
    case "bool": return false;
    case "int":
    case "float": return 0;
    case "select": return selectKey(def.options[0]!);
    case "mapping": return {};
  }
}

/** The JSON of one field in `GET /api/v1/options`: exactly the keys the client's constructors accept. */
export function fieldSpec(def: FieldDefinition): { field: string; label: string; default: unknown; spec: Record<string, unknown> } {
  const spec: Record<string, unknown> = { type: def.type };
  if (def.type === "int" || def.type === "float") {
    spec.min = def.min ?? null;
    spec.max = def.max ?? null;
  }
  if (def.type === "select") spec.options = def.options.map(selectKey);
  return { field: def.field, label: def.label ?? def.field, default: defaultValue(def), spec };
}

/** Checks an operator's field definition; answers a message naming the field, or null. */
export function validateFieldDefinition(def: FieldDefinition): string | null {
  const raw = def as unknown as Record<string, unknown>;
  if (typeof raw !== "object" || raw === null) return "each option must be a mapping";
  if (typeof def.field !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(def.field)) return `option field ${JSON.stringify(raw.field)} must be a Python identifier`;
  if (!(TYPES as readonly string[]).includes(def.type)) return `option '${def.field}': type must be one of ${TYPES.join(", ")}`;
  if (def.type === "select" && (!Array.isArray(def.options) || def.options.length === 0 || !def.options.every(isSelectOption))) {
    return `option '${def.field}': options must be a non-empty list of strings or {key, value}`;
  }
  if ((def.type === "int" || def.type === "float") && def.min != null && def.max != null && def.min > def.max) {
    return `option '${def.field}': min is greater than max`;
  }
  const error = validateValue(def, defaultValue(def));
  // The client re-validates defaults and crashes on a bad one, so refuse it at startup.
  return error === null ? null : `option '${def.field}': its default is invalid: ${error}`;
}

/** Validates a user's options: unknown keys refused, defaults filled in, select keys mapped to values. */
export function parseOptions(defs: readonly FieldDefinition[], request: unknown): ParseResult {
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return { ok: false, error: `cluster_options must be a mapping, got ${pythonRepr(request)}` };
  }
  const given = request as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !defs.some((d) => d.field === k)).sort();
  if (unknown.length) return { ok: false, error: `Unknown fields ${pythonRepr(unknown)}` };
  const options: Record<string, unknown> = {};
  const config: Record<string, unknown> = {};
  for (const def of defs) {
    const value = def.field in given ? given[def.field] : defaultValue(def);
    const error = validateValue(def, value);
    if (error) return { ok: false, error };
    options[def.field] = value;
    config[def.target ?? def.field] = transform(def, value);
  }
  return { ok: true, options, config };
}

function validateValue(def: FieldDefinition, value: unknown): string | null {
  const got = pythonRepr(value);
  switch (def.type) {
    case "string":
      return typeof value === "string" ? null : `${def.field} must be a string, got ${got}`;
    case "bool":
      return typeof value === "boolean" ? null : `${def.field} must be a bool, got ${got}`;
    case "int":
      // Python's bool is an int, so the reference accepts true and false here; so do we.
      if (!(typeof value === "boolean" || (typeof value === "number" && Number.isInteger(value)))) return `${def.field} must be an integer, got ${got}`;
      return checkBounds(def.field, Number(value), def.min, def.max, got);
    case "float":
      if (!(typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value)))) return `${def.field} must be a float, got ${got}`;
      return checkBounds(def.field, Number(value), def.min, def.max, got);
    case "select":
      if (typeof value !== "string") return `${def.field} must be a string, got ${got}`;
      return def.options.some((o) => selectKey(o) === value) ? null : `${pythonRepr(value)} is not a valid option for ${def.field}`;
    case "mapping":
      return typeof value === "object" && value !== null && !Array.isArray(value) ? null : `${def.field} must be a mapping, got ${got}`;
  }
}

function checkBounds(field: string, n: number, min: number | null | undefined, max: number | null | undefined, got: string): string | null {
  if (min != null && n < min) return `${field} must be >= ${min.toFixed(6)}, got ${got}`;
  if (max != null && n > max) return `${field} must be <= ${max.toFixed(6)}, got ${got}`;
  return null;
}

function transform(def: FieldDefinition, value: unknown): unknown {
  if (def.type === "select") {
    const option = def.options.find((o) => selectKey(o) === value)!;
    return typeof option === "string" ? option : option.value;
  }
  return value;
}

function selectKey(option: SelectOption): string {
  return typeof option === "string" ? option : option.key;
}

function isSelectOption(o: unknown): o is SelectOption {
  return typeof o === "string" || (typeof o === "object" && o !== null && typeof (o as { key?: unknown }).key === "string");
}

/** Python's repr of a JSON value, for error texts that match the reference's. */
export function pythonRepr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return value.includes("'") && !value.includes('"') ? `"${value}"` : `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(", ")}]`;
  return `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${pythonRepr(k)}: ${pythonRepr(v)}`).join(", ")}}`;
}
