// Do-not-call lists: numbers never dialled, by one campaign (a panel on its page) or by
// every campaign (the global list, DoNotCallPage). Operators add numbers, typed or from a
// CSV file with each rejected row named; only admins remove them, since that lets a
// number be called again. voxbridge checks the lists when the dialler leases calls.

import { useState, type FormEvent } from "react";
import { can, qs, request } from "../api";
import { dateTime } from "../format";
import { useRole } from "../session";
import type { DncAdded, DncPage } from "../types";
import { ErrorBox, Loading, PageHeader, useResource } from "../ui";

const PAGE = 100;

/** The global list, as a page of its own. */
export function DoNotCallPage() {
  return (
    <>
      <PageHeader title="Do not call" sub="Numbers no campaign dials. Each campaign also has its own list, on its page." />
      <DoNotCallPanel />
    </>
  );
}

/** One list: `campaignId`'s, or the global list without it. */
export function DoNotCallPanel({ campaignId }: { campaignId?: string }) {
  const role = useRole();
  const [after, setAfter] = useState<string[]>([]);
  const path = `/do-not-call${qs({ campaign_id: campaignId, after: after[after.length - 1], limit: String(PAGE) })}`;
  const page = useResource<DncPage>("Load the do-not-call list", path);
  const [text, setText] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<DncAdded | null>(null);
  const list = qs({ campaign_id: campaignId });

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const r = file
        ? await request<DncAdded>(`Add ${file.name} to the list`, "POST", `/do-not-call${list}`, {
            raw: { body: await file.text(), contentType: "text/csv" },
          })
        : await request<DncAdded>("Add to the list", "POST", `/do-not-call${list}`, {
            body: { numbers: text.split(/[\s,;]+/).filter(Boolean) },
          });
      setResult(r);
      setText("");
      page.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (number: string) => {
    setError(null);
    try {
      await request("Remove from the list", "POST", `/do-not-call/remove${list}`, { body: { numbers: [number] } });
      page.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section className="panel" aria-labelledby="dnc-h" data-testid="dnc">
      <h2 id="dnc-h">{campaignId ? "Do not call (this campaign)" : "Do not call (every campaign)"}</h2>
      {can.operate(role) && (
        <form onSubmit={add} className="upload-row">
          <input
            aria-label="Numbers to add"
            data-testid="dnc-numbers"
            placeholder="+14155550123, +14155550124"
            value={text}
            disabled={!!file}
            onChange={(e) => setText(e.target.value)}
          />
          <input
            type="file"
            accept=".csv,text/csv"
            aria-label="CSV file of numbers not to call"
            data-testid="dnc-csv"
            onChange={(e) => setFile(e.target.files?.[0] ?? null)}
          />
          <button type="submit" className="btn btn-primary" disabled={busy || (!file && !text.trim())}>
            {busy ? "Adding…" : "Add"}
          </button>
        </form>
      )}
      <ErrorBox error={error} />
      {result && (
        <div data-testid="dnc-result">
          <div className={`alert ${result.rejected_count ? "alert-warn" : "alert-ok"}`} role="status">
            {result.added} added, {result.already_listed} already listed
            {result.rejected_count ? `; ${result.rejected_count} row(s) rejected.` : "."}
          </div>
          {result.rejected.length > 0 && (
            <div className="table-wrap">
              <table className="table" data-testid="dnc-rejected">
                <thead>
                  <tr>
                    <th className="num">Row</th>
                    <th>Value</th>
                    <th>Why it was rejected</th>
                  </tr>
                </thead>
                <tbody>
                  {result.rejected.map((r) => (
                    <tr key={`${r.row}-${r.input}`}>
                      <td className="num">{r.row}</td>
                      <td>
                        <code>{r.input || "(empty)"}</code>
                      </td>
                      <td>{r.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
      {!!page.error && !page.data && <ErrorBox error={page.error} onRetry={page.reload} />}
      {!page.data && !page.error && <Loading what="Loading the list" />}
      {page.data && page.data.entries.length === 0 && after.length === 0 && <p className="muted">The list is empty.</p>}
      {page.data && page.data.entries.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="dnc-entries">
            <thead>
              <tr>
                <th>Number</th>
                <th>Added</th>
                <th>By</th>
                {can.administer(role) && <th />}
              </tr>
            </thead>
            <tbody>
              {page.data.entries.map((e) => (
                <tr key={e.number} data-testid={`dnc-${e.number}`}>
                  <td>
                    <code>{e.number}</code>
                  </td>
                  <td>{dateTime(e.added_at)}</td>
                  <td>{e.added_by}</td>
                  {can.administer(role) && (
                    <td>
                      <button type="button" className="btn btn-small" onClick={() => remove(e.number)}>
                        Remove
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="form-actions">
        {after.length > 0 && (
          <button type="button" className="btn" onClick={() => setAfter(after.slice(0, -1))}>
            Previous
          </button>
        )}
        {page.data?.next_after && (
          <button type="button" className="btn" onClick={() => setAfter([...after, page.data?.next_after ?? ""])}>
            Next
          </button>
        )}
      </div>
    </section>
  );
}
