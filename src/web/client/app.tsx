/**
 * The page's root: the session (sign-in form until there is one), the header, and a hash route for each
 * screen (#/ my clusters, #/new, #/clusters/<name>, #/clusters/<name>/logs/<component>, #/admin). Hash
 * routes need nothing from the server, so the page works under any path prefix.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, setCsrf, whenSignedOut, type SessionUser } from "./api.js";
import { AdminView } from "./admin.js";
import { ClusterDetails } from "./details.js";
import { CreateForm } from "./create.js";
import { ClusterList } from "./clusters.js";
import { LogViewer } from "./logs.js";
import { SignIn } from "./signin.js";
import { ErrorBox } from "./widgets.js";

interface SessionAnswer {
  user: SessionUser | null;
  csrf: string | null;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

function App() {
  const [user, setUser] = useState<SessionUser | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const hash = useHash();

  const accept = (answer: SessionAnswer) => {
    setCsrf(answer.csrf);
    setUser(answer.user);
  };
  useEffect(() => {
    whenSignedOut(() => accept({ user: null, csrf: null }));
    api<SessionAnswer>("GET", "ui/session").then(accept, (err: ApiError) => setError(err.message));
  }, []);

  const signOut = async () => {
    await api("DELETE", "ui/session").catch(() => undefined);
    accept({ user: null, csrf: null });
  };

  if (error) return <main class="narrow"><ErrorBox title="The gateway did not answer" message={error} /></main>;
  if (user === undefined) return <p class="boot">Loading…</p>;
  if (user === null) return <SignIn onSignedIn={accept} />;
  return (
    <>
      <Header user={user} hash={hash} onSignOut={signOut} />
      <main id="main" tabIndex={-1}>{route(hash, user)}</main>
    </>
  );
}

function route(hash: string, user: SessionUser) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "new") return <CreateForm />;
  if (parts[0] === "admin") return user.admin ? <AdminView /> : <ErrorBox title="Operators only" message="This view is for the gateway's admins." />;
  if (parts[0] === "clusters" && parts[1]) {
    if (parts[2] === "logs") return <LogViewer cluster={parts[1]} component={parts[3] || "scheduler"} />;
    return <ClusterDetails name={parts[1]} user={user} />;
  }
  return <ClusterList />;
}

/** The hash is the route: the skip link moves the focus instead of navigating. */
function skipToMain(event: Event) {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

function Header(props: { user: SessionUser; hash: string; onSignOut: () => void }) {
  const current = (prefix: string) => (props.hash.replace(/^#\/?/, "").split("/")[0] === prefix ? "page" : undefined);
  return (
    <header class="top">
      <a class="skip" href="#main" onClick={skipToMain}>Skip to content</a>
      <span class="brand">Dask Gateway</span>
      <nav aria-label="Main">
        <a href="#/" aria-current={current("") ?? current("clusters")}>My clusters</a>
        <a href="#/new" aria-current={current("new")}>New cluster</a>
        {props.user.admin && <a href="#/admin" aria-current={current("admin")}>Operators</a>}
      </nav>
      <span class="who">
        {props.user.name}
        {props.user.admin && <span class="tag">admin</span>}
      </span>
      <button type="button" class="link" onClick={props.onSignOut}>Sign out</button>
    </header>
  );
}

render(<App />, document.getElementById("app")!);
