// Who did what to which object, and why: the whole audit log, newest first.

import { Empty, ErrorBox, Loading, PageHeader, useResource } from "../ui";
import type { AuditEvent } from "../types";
import { AuditTable } from "./NodeDetail";

export function AuditPage() {
  const audit = useResource<{ events: AuditEvent[] }>("Load the audit log", "/audit?limit=200", 10000);
  return (
    <>
      <PageHeader title="Audit log" sub="Registrations, lifecycle changes and storage settings: who, when and why." />
      <ErrorBox error={audit.error} onRetry={audit.reload} />
      {!audit.data && !audit.error && <Loading what="Loading the audit log" />}
      {audit.data && audit.data.events.length === 0 && <Empty title="Nothing has been recorded yet" />}
      {audit.data && audit.data.events.length > 0 && <AuditTable events={audit.data.events} showTarget />}
    </>
  );
}
