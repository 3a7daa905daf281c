/**
 * Where the shared password comes from: the setting, a file (e.g. a Docker secret), or one generated
 * on first start and kept in the state directory so that it survives restarts.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface SharedPassword {
  password: string;
  /** Where it came from, for the startup banner (the value itself is printed only when generated). */
  source: "setting" | "file" | "generated" | "state";
}

/** Resolves the shared password; generates and stores one (mode 0600) when none is configured. */
export function resolveSharedPassword(setting: string | null, file: string | null, stateDir: string): SharedPassword {
  if (setting) return { password: setting, source: "setting" };
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`auth.password_file: cannot read ${file}: ${(err as Error).message}`);
    }
    const password = text.replace(/\r?\n$/, "");
    if (!password) throw new Error(`auth.password_file: ${file} is empty`);
    return { password, source: "file" };
  }
  const stored = join(stateDir, "password");
  if (existsSync(stored)) return { password: readFileSync(stored, "utf8").trim(), source: "state" };
  const password = randomBytes(18).toString("base64url");
  writeFileSync(stored, password + "\n", { mode: 0o600, flag: "wx" });
  return { password, source: "generated" };
}
