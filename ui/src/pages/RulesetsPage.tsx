/**
 * The draft policy: its rulesets (and the objects they name) as the YAML a person wrote, and
 * an editor that saves one document through the draft routes. The server validates the
 * document and resolves the whole would-be draft, so every problem comes back located; the
 * draft is not enforced until it is provisioned.
 */
import { useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { parse, stringify } from 'yaml';
import { ApiFailure, get, send, type PolicyDocument } from '../api';
import { ErrorBox, PageHeader, Segmented, Spinner } from '../components/ui';
import { navigate } from '../router';

type Format = 'yaml' | 'json';
const KIND_ORDER = ['Ruleset', 'Service', 'IpList', 'LabelGroup', 'UserGroup', 'Settings'];
const KIND_TITLE: Record<string, string> = {
  Ruleset: 'Rulesets',
  Service: 'Services',
  IpList: 'IP lists',
  LabelGroup: 'Label groups',
  UserGroup: 'User groups',
  Settings: 'Settings',
};
const NEW_RULESET = `kind: Ruleset
name: new-ruleset
scope: {labels: {app: shop}}
rules:
  - name: web-to-api
    sources: {labels: {role: web}}
    destinations: {labels: {role: api}}
    services: ["8080/tcp"]
`;

const docName = (d: PolicyDocument): string => d.name ?? 'settings';
const docKey = (d: PolicyDocument): string => `${d.kind}/${docName(d)}`;

function render(doc: unknown, format: Format): string {
  return format === 'yaml' ? stringify(doc, { lineWidth: 100 }) : JSON.stringify(doc, null, 2);
}

export function RulesetsPage() {
  const client = useQueryClient();
  const draft = useQuery({
    queryKey: ['draft'],
    queryFn: () => get<{ items: PolicyDocument[] }>('/policy/draft'),
  });
  const [selected, setSelected] = useState<string | null>(null);
  const [format, setFormat] = useState<Format>('yaml');
  // The user's text; null while it is the stored document as it is.
  const [edited, setEdited] = useState<string | null>(null);
  const [parseError, setParseError] = useState<string | null>(null);

  const docs = useMemo(() => {
    const items = [...(draft.data?.items ?? [])];
    items.sort(
      (a, b) =>
        KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) ||
        docName(a).localeCompare(docName(b)),
    );
    return items;
  }, [draft.data]);
  // The first ruleset is open until the user picks another document.
  const defaultKey = docs.length
    ? docKey(docs.find((d) => d.kind === 'Ruleset') ?? docs[0]!)
    : null;
  const openKey = selected ?? defaultKey;
  const current = docs.find((d) => docKey(d) === openKey);
  const text = edited ?? (current ? render(current, format) : '');
  const dirty = edited !== null;
  const setText = (t: string) => setEdited(t);

  const open = (d: PolicyDocument) => {
    setSelected(docKey(d));
    setEdited(null);
    setParseError(null);
    save.reset();
  };

  const save = useMutation({
    mutationFn: async (doc: PolicyDocument) =>
      send<{ action: string }>(
        'PUT',
        `/policy/draft/${encodeURIComponent(doc.kind)}/${encodeURIComponent(docName(doc))}`,
        doc,
      ),
    onSuccess: async (_r, doc) => {
      setEdited(null);
      setSelected(docKey(doc));
      await client.invalidateQueries({ queryKey: ['draft'] });
      void client.invalidateQueries({ queryKey: ['preview'] });
    },
  });

  const submit = () => {
    let doc: unknown;
    try {
      doc = format === 'yaml' ? parse(text) : JSON.parse(text);
    } catch (e) {
      setParseError(`not valid ${format.toUpperCase()}: ${(e as Error).message}`);
      return;
    }
    if (!doc || typeof doc !== 'object' || typeof (doc as { kind?: unknown }).kind !== 'string') {
      setParseError('a document is an object with a "kind" (Ruleset, Service, IpList, …)');
      return;
    }
    setParseError(null);
    save.mutate(doc as PolicyDocument);
  };

  const rules = (d: PolicyDocument) => {
    const list = d.rules;
    return Array.isArray(list) ? list.length : 0;
  };

  return (
    <div className="page rulesets-page">
      <PageHeader
        title="Rulesets"
        subtitle="The draft policy. Saved changes take effect when they are provisioned."
      >
        <button
          className="btn"
          onClick={() => {
            setSelected('new');
            setFormat('yaml');
            setText(NEW_RULESET);
            save.reset();
          }}
          data-testid="ruleset-new"
        >
          New ruleset
        </button>
        <button className="btn primary" onClick={() => navigate('provisioning')}>
          Review &amp; provision
        </button>
      </PageHeader>
      <ErrorBox error={draft.error} />
      <div className="split">
        <div className="doc-list" data-testid="draft-documents">
          {draft.isLoading ? <Spinner /> : null}
          {KIND_ORDER.map((kind) => {
            const ofKind = docs.filter((d) => d.kind === kind);
            if (!ofKind.length) return null;
            return (
              <div key={kind}>
                <div className="doc-kind">{KIND_TITLE[kind] ?? kind}</div>
                {ofKind.map((d) => (
                  <button
                    key={docKey(d)}
                    className={`doc-item${openKey === docKey(d) ? ' active' : ''}`}
                    onClick={() => open(d)}
                    data-testid="draft-document"
                    data-key={docKey(d)}
                  >
                    <span className="mono">{docName(d)}</span>
                    {d.kind === 'Ruleset' ? (
                      <span className="muted small">{rules(d)} rules</span>
                    ) : null}
                  </button>
                ))}
              </div>
            );
          })}
          {draft.data && docs.length === 0 ? (
            <p className="muted pad">The draft is empty. Write a ruleset to start.</p>
          ) : null}
        </div>
        <div className="editor-pane">
          <div className="editor-head">
            <span className="mono strong">
              {selected === 'new' ? 'new document' : current ? docKey(current) : ''}
            </span>
            {dirty ? <span className="pill pill-draft">unsaved</span> : null}
            <span className="spacer" />
            <Segmented
              value={format}
              options={[
                { value: 'yaml', label: 'YAML' },
                { value: 'json', label: 'JSON' },
              ]}
              onChange={(f) => {
                try {
                  if (edited !== null) {
                    const doc: unknown = format === 'yaml' ? parse(text) : JSON.parse(text);
                    setText(render(doc, f));
                  }
                  setParseError(null);
                } catch (e) {
                  setParseError(`cannot switch: ${(e as Error).message}`);
                  return;
                }
                setFormat(f);
              }}
              testId="editor-format"
            />
          </div>
          <textarea
            className="editor"
            spellCheck={false}
            value={text}
            onChange={(e) => setText(e.target.value)}
            data-testid="ruleset-editor"
          />
          {parseError ? (
            <div className="error-box" role="alert">
              {parseError}
            </div>
          ) : null}
          {save.error ? <ValidationErrors error={save.error} /> : null}
          {save.isSuccess ? (
            <div className="ok-box" data-testid="ruleset-saved">
              Saved to the draft ({save.data.action}).
            </div>
          ) : null}
          <div className="editor-actions">
            <button
              className="btn primary"
              onClick={submit}
              disabled={save.isPending || !text.trim()}
              data-testid="ruleset-save"
            >
              {save.isPending ? <Spinner /> : null} Save to draft
            </button>
            {current ? (
              <button className="btn ghost" onClick={() => open(current)} disabled={!dirty}>
                Revert
              </button>
            ) : null}
          </div>
        </div>
      </div>
    </div>
  );
}

function ValidationErrors({ error }: { error: unknown }) {
  if (!(error instanceof ApiFailure) || error.details.length === 0)
    return <ErrorBox error={error} />;
  return (
    <div className="error-box" role="alert" data-testid="ruleset-errors">
      <strong>The draft would not be valid</strong>
      <ul>
        {error.details.map((d, i) => (
          <li key={i}>
            <code>{d.path}</code> {d.message}
          </li>
        ))}
      </ul>
    </div>
  );
}
