// The shell: sign-in when there is no session, otherwise the navigation and the screen
// the address names.

import { useEffect, useState, type ReactNode } from "react";
import { can } from "./api";
import { LiveProvider, useLive } from "./live";
import { Link, match, useLocation } from "./router";
import { useSession } from "./session";
import { Empty } from "./ui";
import { Login } from "./pages/Login";
import { DashboardPage } from "./pages/Dashboard";
import { RegionsPage } from "./pages/Regions";
import { RegionDetailPage } from "./pages/RegionDetail";
import { NodesPage } from "./pages/Nodes";
import { NodeDetailPage } from "./pages/NodeDetail";
import { SingletonsPage } from "./pages/Singletons";
import { CampaignsPage } from "./pages/Campaigns";
import { CampaignDetailPage } from "./pages/CampaignDetail";
import { CampaignFormPage } from "./pages/CampaignForm";
import { CallsPage } from "./pages/Calls";
import { CallDetailPage } from "./pages/CallDetail";
import { UsersPage } from "./pages/Users";
import { ApiKeysPage } from "./pages/ApiKeys";
import { WebhooksPage } from "./pages/Webhooks";
import { AuditPage } from "./pages/Audit";
import { DoNotCallPage } from "./pages/DoNotCall";

interface Route {
  pattern: string;
  render: (p: Record<string, string>) => ReactNode;
  title: string;
}

const ROUTES: Route[] = [
  { pattern: "/", render: () => <DashboardPage />, title: "Dashboard" },
  { pattern: "/regions", render: () => <RegionsPage />, title: "Regions" },
  { pattern: "/regions/:id", render: (p) => <RegionDetailPage id={p.id} />, title: "Region" },
  { pattern: "/nodes", render: () => <NodesPage />, title: "Nodes" },
  { pattern: "/nodes/:id", render: (p) => <NodeDetailPage id={p.id} />, title: "Node" },
  { pattern: "/singletons", render: () => <SingletonsPage />, title: "Singletons" },
  { pattern: "/campaigns", render: () => <CampaignsPage />, title: "Campaigns" },
  { pattern: "/campaigns/new", render: () => <CampaignFormPage />, title: "New campaign" },
  { pattern: "/campaigns/:id", render: (p) => <CampaignDetailPage id={p.id} />, title: "Campaign" },
  { pattern: "/campaigns/:id/edit", render: (p) => <CampaignFormPage id={p.id} />, title: "Edit campaign" },
  { pattern: "/calls", render: () => <CallsPage />, title: "Calls" },
  { pattern: "/calls/:id", render: (p) => <CallDetailPage id={p.id} />, title: "Call" },
  { pattern: "/do-not-call", render: () => <DoNotCallPage />, title: "Do not call" },
  { pattern: "/users", render: () => <UsersPage />, title: "Users" },
  { pattern: "/api-keys", render: () => <ApiKeysPage />, title: "API keys" },
  { pattern: "/webhooks", render: () => <WebhooksPage />, title: "Webhooks" },
  { pattern: "/audit", render: () => <AuditPage />, title: "Audit log" },
];

const NAV: { to: string; label: string; adminOnly?: boolean }[] = [
  { to: "/", label: "Dashboard" },
  { to: "/regions", label: "Regions" },
  { to: "/nodes", label: "Nodes" },
  { to: "/singletons", label: "Singletons" },
  { to: "/campaigns", label: "Campaigns" },
  { to: "/calls", label: "Calls" },
  { to: "/do-not-call", label: "Do not call" },
  { to: "/audit", label: "Audit log" },
  { to: "/users", label: "Users", adminOnly: true },
  { to: "/api-keys", label: "API keys", adminOnly: true },
  { to: "/webhooks", label: "Webhooks", adminOnly: true },
];

function LiveDot() {
  const { stream } = useLive();
  const text = stream === "live" ? "Live" : stream === "connecting" ? "Connecting" : "Reconnecting";
  return (
    <span className={`live-dot live-${stream}`} title="The dashboard stream" data-testid="live-state">
      <span aria-hidden="true" /> {text}
    </span>
  );
}

function Shell() {
  const { user, signOut, expiresAt } = useSession();
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);

  let page: ReactNode = null;
  let title = "Not found";
  for (const r of ROUTES) {
    const p = match(r.pattern, path);
    if (p) {
      page = r.render(p);
      title = r.title;
      break;
    }
  }
  useEffect(() => {
    document.title = `${title} · Vox console`;
  }, [title]);

  const current = (to: string) => (to === "/" ? path === "/" : path === to || path.startsWith(to + "/"));

  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="menu-btn"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          <span aria-hidden="true">☰</span> Menu
        </button>
        <Link to="/" className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} /> Vox
        </Link>
        <LiveDot />
        <div className="who">
          <span className="who-email" title={expiresAt ? `Session expires ${new Date(expiresAt).toLocaleTimeString()}` : ""}>
            {user?.email}
          </span>
          <span className={`badge badge-role-${user?.role}`} data-testid="role">
            {user?.role}
          </span>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => signOut("You signed out.")}>
            Sign out
          </button>
        </div>
      </header>
      <div className="body">
        <nav id="nav" className={menuOpen ? "nav open" : "nav"} aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.adminOnly || can.administer(user?.role)).map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={current(n.to) ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          {page ?? (
            <Empty title="No such page">
              <Link to="/">Go to the dashboard</Link>
            </Empty>
          )}
        </main>
      </div>
    </div>
  );
}

export function App() {
  const { user } = useSession();
  if (!user) return <Login />;
  return (
    <LiveProvider key={user.id}>
      <Shell />
    </LiveProvider>
  );
}
