// Campaigns: the list with each one's status and call counts.

import { can } from "../api";
import { Link } from "../router";
import { useRole } from "../session";
import type { Campaign, CampaignStatus, Region } from "../types";
import { Badge, Empty, ErrorBox, Loading, PageHeader, useResource } from "../ui";

export const STATUS_TONE: Record<CampaignStatus, string> = {
  draft: "muted",
  running: "ok",
  paused: "warn",
  completed: "info",
};

export function CampaignsPage() {
  const role = useRole();
  const campaigns = useResource<{ campaigns: Campaign[] }>("Load the campaigns", "/campaigns", 5000);
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const regionName = (id: string) => regions.data?.regions.find((r) => r.id === id)?.name ?? id;
  const list = campaigns.data?.campaigns ?? [];
  return (
    <>
      <PageHeader
        title="Campaigns"
        sub="Outbound calling: numbers, agent, calling window, retries and pacing."
        actions={
          can.operate(role) && (
            <Link to="/campaigns/new" className="btn btn-primary">
              New campaign
            </Link>
          )
        }
      />
      <ErrorBox error={campaigns.error} onRetry={campaigns.reload} />
      {!campaigns.data && !campaigns.error && <Loading what="Loading campaigns" />}
      {campaigns.data && list.length === 0 && (
        <Empty title="No campaigns yet">
          {can.operate(role)
            ? "Create a campaign, upload its numbers as CSV, then start it."
            : "An operator creates campaigns."}
        </Empty>
      )}
      {list.length > 0 && (
        <div className="table-wrap">
          <table className="table stack" data-testid="campaigns-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th>Region</th>
                <th className="num">Numbers</th>
                <th className="num">Pending</th>
                <th className="num">Live</th>
                <th className="num">Completed</th>
                <th className="num">Unsuccessful</th>
              </tr>
            </thead>
            <tbody>
              {list.map((c) => (
                <tr key={c.id}>
                  <td data-label="Name">
                    <Link to={`/campaigns/${c.id}`} className="strong">
                      {c.spec.name}
                    </Link>
                  </td>
                  <td data-label="Status">
                    <Badge tone={STATUS_TONE[c.status]}>{c.status}</Badge>
                  </td>
                  <td data-label="Region">{regionName(c.spec.region_id)}</td>
                  <td className="num" data-label="Numbers">
                    {c.counts.total}
                  </td>
                  <td className="num" data-label="Pending">
                    {c.counts.pending}
                  </td>
                  <td className="num" data-label="Live">
                    {c.counts.live}
                  </td>
                  <td className="num" data-label="Completed">
                    {c.counts.completed}
                  </td>
                  <td className="num" data-label="Unsuccessful">
                    {c.counts.unsuccessful}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
