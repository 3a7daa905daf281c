/** The sign-in form: the same user names and passwords as the API; success opens a page session (a cookie). */
import { useState } from "preact/hooks";
import { api, ApiError, type SessionUser } from "./api.js";

export function SignIn(props: { onSignedIn: (answer: { user: SessionUser | null; csrf: string | null }) => void }) {
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      props.onSignedIn(await api("POST", "ui/session", { name, password }));
    } catch (err) {
      setError((err as ApiError).message);
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <h1>Dask Gateway</h1>
      <form onSubmit={submit} aria-describedby={error ? "signin-error" : undefined}>
        <h2>Sign in</h2>
        <label for="signin-name">User name</label>
        <input id="signin-name" name="username" autoComplete="username" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="signin-password">Password</label>
        <input id="signin-password" name="password" type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        {error && <p id="signin-error" class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
        <p class="hint">The same credentials as the Python client's <code>BasicAuth</code>.</p>
      </form>
    </main>
  );
}
