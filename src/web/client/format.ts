/** Small formatting helpers for the page (all output goes through Preact, which escapes text). */

export function formatBytes(bytes: number): string {
  if (bytes <= 0) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** 3 h 12 min, 5 min 3 s, 12 s. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** A local date and time, to the second. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatCores(cores: number): string {
  return Number.isInteger(cores) ? String(cores) : cores.toFixed(2).replace(/0+$/, "");
}

/** Options as `key=value` pairs, for one table cell. */
export function formatOptions(options: Record<string, unknown>): string {
  return Object.entries(options).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

/** The short form of a 32-digit cluster or worker name. */
export function shortName(name: string): string {
  return name.length > 12 ? `${name.slice(0, 12)}…` : name;
}
