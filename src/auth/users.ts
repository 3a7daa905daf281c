/**
 * Where users come from: a users file with hashed passwords, or one shared password with any user name.
 */
import { readFileSync } from "node:fs";
import { parseYaml } from "../config/yaml.js";
import { isPasswordHash, secretsEqual, verifyPassword } from "./passwords.js";

export interface User {
  readonly name: string;
  readonly admin: boolean;
}

/** Checks a user name and password; answers the user, or null when they do not match. */
export interface UserStore {
  check(name: string, password: string): Promise<User | null>;
}

/** Any user name with the one shared password; names in `admins` get the admin role. */
export function sharedPasswordStore(password: string, admins: readonly string[]): UserStore {
  return {
    async check(name, given) {
      if (!name || !secretsEqual(given, password)) return null;
      return { name, admin: admins.includes(name) };
    },
  };
}

interface UserEntry {
  hash: string;
  admin: boolean;
}

/** Users from a YAML/JSON file: `users: {alice: {password: <scrypt hash>, admin: true}}`. */
export function usersFileStore(file: string, extraAdmins: readonly string[]): UserStore {
  const users = readUsersFile(file);
  return {
    async check(name, given) {
      const entry = users.get(name);
      // Verify against a dummy hash for unknown users so that timing does not reveal which names exist.
      const ok = await verifyPassword(given, entry?.hash ?? DUMMY_HASH);
      if (!entry || !ok) return null;
      return { name, admin: entry.admin || extraAdmins.includes(name) };
    },
  };
}

const DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/** Parses and validates a users file; errors name the file and the user. */
export function readUsersFile(file: string): Map<string, UserEntry> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`auth.users_file ${file}: ${(err as Error).message}`);
  }
  const users = (doc as { users?: unknown } | null)?.users;
  if (typeof users !== "object" || users === null || Array.isArray(users)) {
    throw new Error(`auth.users_file ${file}: expected a mapping 'users: {name: {password: <hash>, admin: bool}}'`);
  }
  const out = new Map<string, UserEntry>();
  for (const [name, raw] of Object.entries(users)) {
    const entry = raw as { password?: unknown; admin?: unknown } | null;
    if (typeof entry?.password !== "string" || !isPasswordHash(entry.password)) {
      throw new Error(`auth.users_file ${file}: user '${name}' needs 'password' set to a hash made with 'hash-password' (plain passwords are not accepted)`);
    }
    if (entry.admin !== undefined && typeof entry.admin !== "boolean") {
      throw new Error(`auth.users_file ${file}: user '${name}': 'admin' must be true or false`);
    }
    out.set(name, { hash: entry.password, admin: entry.admin === true });
  }
  return out;
}
