/** The shell: sign-in until a key works, then the sidebar and the current page. */
import { useEffect, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiFailure, onSignOut, request, session } from './api';
import { Icon, Logo } from './components/icons';
import { ErrorBox, Spinner } from './components/ui';
import { navigate, usePage, type Page } from './router';
import { MapPage } from './pages/MapPage';
import { WorkloadsPage } from './pages/WorkloadsPage';
import { FlowsPage } from './pages/FlowsPage';
import { RulesetsPage } from './pages/RulesetsPage';
import { ProvisioningPage } from './pages/ProvisioningPage';
import { GeneratorPage } from './pages/GeneratorPage';
import { RolloutPage } from './pages/RolloutPage';
import { AuditPage } from './pages/AuditPage';

const NAV: readonly { page: Page; label: string; hint: string }[] = [
  { page: 'map', label: 'Map', hint: 'Application dependency map' },
  { page: 'workloads', label: 'Workloads', hint: 'Labels, modes and agents' },
  { page: 'flows', label: 'Flows', hint: 'Explore and export traffic' },
  { page: 'rulesets', label: 'Rulesets', hint: 'Edit the draft policy' },
  { page: 'generator', label: 'Generator', hint: 'Generate rules from observed traffic' },
  { page: 'provisioning', label: 'Provisioning', hint: 'Preview, provision, roll back' },
  { page: 'rollout', label: 'Rollout', hint: 'Move workloads towards full enforcement' },
  { page: 'audit', label: 'Audit', hint: 'Who changed what' },
];

export function App() {
  const [signedIn, setSignedIn] = useState(() => session.key() !== null);
  const client = useQueryClient();
  useEffect(
    () =>
      onSignOut(() => {
        client.clear();
        setSignedIn(false);
      }),
    [client],
  );
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  return <Shell />;
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any read proves the key; the workloads list is the cheapest one every role may read.
      await request('/workloads?limit=1', { key: key.trim() });
      session.signIn(key.trim());
      onSignedIn();
    } catch (err) {
      setError(
        err instanceof ApiFailure && err.status === 401
          ? new Error(
              'This key was not accepted. Check it for typos; it may also have expired or been revoked.',
            )
          : err,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="signin">
      <form className="signin-card" onSubmit={(e) => void submit(e)} data-testid="signin-form">
        <div className="signin-brand">
          <Logo />
          <span>Bulkhead</span>
        </div>
        <h1>Sign in</h1>
        <p className="muted">
          Use an API key of this control plane. The owner key is printed when the server first
          starts; other keys are made under <code>/api/v1/keys</code>.
        </p>
        <label className="field">
          <span>API key</span>
          <input
            type="password"
            autoFocus
            autoComplete="off"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="bhk_…"
            data-testid="signin-key"
          />
        </label>
        <ErrorBox error={error} />
        <button
          className="btn primary wide"
          type="submit"
          disabled={busy || !key.trim()}
          data-testid="signin-submit"
        >
          {busy ? <Spinner /> : null} Sign in
        </button>
        <p className="fineprint">The key is kept only for this browser tab.</p>
      </form>
    </div>
  );
}

function Shell() {
  const page = usePage();
  return (
    <div className="shell">
      <nav className="sidebar" data-testid="sidebar">
        <div className="brand">
          <Logo />
          <div>
            <div className="brand-name">Bulkhead</div>
            <div className="brand-sub">Microsegmentation</div>
          </div>
        </div>
        <div className="nav-section">Visibility</div>
        {NAV.slice(0, 3).map((n) => (
          <NavItem key={n.page} {...n} active={page === n.page} />
        ))}
        <div className="nav-section">Policy</div>
        {NAV.slice(3).map((n) => (
          <NavItem key={n.page} {...n} active={page === n.page} />
        ))}
        <div className="sidebar-foot">
          <button className="nav-item" onClick={() => session.signOut()} data-testid="signout">
            <Icon name="logout" />
            <span>Sign out</span>
          </button>
        </div>
      </nav>
      <main className="content" data-testid={`page-${page}`}>
        {page === 'map' ? <MapPage /> : null}
        {page === 'workloads' ? <WorkloadsPage /> : null}
        {page === 'flows' ? <FlowsPage /> : null}
        {page === 'rulesets' ? <RulesetsPage /> : null}
        {page === 'generator' ? <GeneratorPage /> : null}
        {page === 'provisioning' ? <ProvisioningPage /> : null}
        {page === 'rollout' ? <RolloutPage /> : null}
        {page === 'audit' ? <AuditPage /> : null}
      </main>
    </div>
  );
}

function NavItem({
  page,
  label,
  hint,
  active,
}: {
  page: Page;
  label: string;
  hint: string;
  active: boolean;
}) {
  return (
    <a
      href={`/${page}`}
      className={`nav-item${active ? ' active' : ''}`}
      title={hint}
      data-testid={`nav-${page}`}
      onClick={(e) => {
        e.preventDefault();
        navigate(page);
      }}
    >
      <Icon name={page} />
      <span>{label}</span>
    </a>
  );
}
