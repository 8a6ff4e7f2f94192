// The JSON shapes of /api/v1 (see /api/v1/openapi.json), as the console uses them.

export type Role = "admin" | "operator" | "viewer";

export interface User {
  id: string;
  email: string;
  role: Role;
  disabled: boolean;
  created_at: string;
}

export interface LoginResponse {
  access_token: string;
  expires_at: string;
  user: User;
}

export interface RegionStorage {
  endpoint_url: string;
  bucket: string;
  access_key: string;
  secret_key_set: boolean;
  use_ssl: boolean;
  signing_region: string;
  force_path_style: boolean;
}

export interface Region {
  id: string;
  name: string;
  country: string;
  storage: RegionStorage | null;
  created_at: string;
  updated_at: string;
}

export type NodeKind = "fleet" | "gateway" | "console" | "background" | "dialler";
export type DesiredState = "active" | "maintenance" | "shutdown" | "disabled";
export type LifecycleAction = "maintenance" | "resume" | "disable" | "shutdown";
export type WorkerState = "idle" | "reserved" | "in_call" | "draining";

export interface WorkerSlot {
  index: number;
  state: WorkerState;
  call_id: string | null;
  endpoint: string;
}

export interface VoxNode {
  id: string;
  kind: NodeKind;
  region_id: string | null;
  name: string;
  endpoint: string;
  sip_port: number;
  desired_state: DesiredState;
  online: boolean;
  last_heartbeat_at: string | null;
  version: string;
  cpu_percent: number;
  memory_used_bytes: number;
  memory_total_bytes: number;
  workers: WorkerSlot[];
  created_at: string;
  boot_id: string | null;
}

export interface NodeWithSecret {
  node: VoxNode;
  api_secret: string;
}

export interface AuditEvent {
  id: string;
  at: string;
  actor: string;
  action: string;
  target_id: string;
  reason: string;
}

export interface Dashboard {
  at: string;
  live: { phone: number; web: number };
  pipeline: { processing: number; pending: number };
  capacity: {
    fleet_nodes_online: number;
    fleet_nodes_total: number;
    gateway_nodes_online: number;
    gateway_nodes_total: number;
    worker_slots_free: number;
    worker_slots_total: number;
  };
}

export type CallState =
  | "pending"
  | "leased"
  | "dialing"
  | "ringing"
  | "answered"
  | "attaching"
  | "in_progress"
  | "completed"
  | "no_answer"
  | "busy"
  | "failed"
  | "abandoned"
  | "canceled"
  | "machine";

export const CALL_STATES: CallState[] = [
  "pending",
  "leased",
  "dialing",
  "ringing",
  "answered",
  "attaching",
  "in_progress",
  "completed",
  "no_answer",
  "busy",
  "failed",
  "abandoned",
  "canceled",
  "machine",
];

export const ENDED_STATES: CallState[] = ["completed", "no_answer", "busy", "failed", "abandoned", "canceled", "machine"];

export interface Call {
  id: string;
  campaign_id: string | null;
  region_id: string;
  direction: "outbound" | "inbound";
  channel: "phone" | "web";
  to_number: string;
  from_number: string;
  state: CallState;
  attempt: number;
  retry_of: string | null;
  due_at: string | null;
  lease: { owner: string; expires_at: string | null; fencing_term: number } | null;
  provider_call_id: string | null;
  node_id: string | null;
  worker_index: number | null;
  recording: { key: string; duration_ms: number; size_bytes: number } | null;
  end_reason: string | null;
  created_at: string;
  updated_at: string;
  answered_at: string | null;
  ended_at: string | null;
  version: number;
}

export interface CallPage {
  calls: Call[];
  next_page_token: string | null;
}

export interface CallEvent {
  seq: number;
  at: string;
  from_state: CallState | null;
  to_state: CallState;
  actor: string;
  reason: string;
  fencing_term: number;
}

export type CampaignStatus = "draft" | "running" | "paused" | "completed";
export type PacingMode = "predictive" | "progressive" | "fixed_ratio";
export type AgentKind = "echo" | "prompt" | "external";
export type ComplianceRegime = "fcc" | "ofcom";

export interface CampaignSpec {
  name: string;
  region_id: string;
  caller_id: string;
  agent: { kind: AgentKind; prompt_key?: string | null; external_url?: string | null; params: Record<string, string> } | null;
  weight: number;
  max_concurrency: number;
  window: { time_zone: string; start: string; end: string; days: number[] } | null;
  retry: { max_attempts: number; backoff_seconds: number; backoff_multiplier: number; retry_on: CallState[] } | null;
  pacing: { mode: PacingMode; fixed_ratio: number; abandon_target: number; max_calls_per_second: number } | null;
  /** Omitted by gateways older than the setting: FCC, 15 s. */
  compliance?: { regime: ComplianceRegime; min_ring_seconds: number } | null;
}

/** Abandons over live answers (people who answered; machines apart) in [from, to). */
export interface AbandonPeriod {
  from: string;
  to: string;
  live_answers: number;
  abandons: number;
  machine_answers: number;
  abandon_rate: number;
}

export interface AbandonLedger {
  campaign_id: string;
  regime: ComplianceRegime;
  limit: number;
  last_24_hours: AbandonPeriod;
  last_30_days: AbandonPeriod;
  regulated: AbandonPeriod;
  within_limit: boolean;
  abandon_headroom: number;
}

export interface DncEntry {
  number: string;
  campaign_id: string | null;
  added_at: string;
  added_by: string;
}

export interface DncPage {
  entries: DncEntry[];
  next_after: string | null;
}

export interface DncAdded {
  added: number;
  already_listed: number;
  rejected: { row: number; input: string; reason: string }[];
  rejected_count: number;
}

export interface Campaign {
  id: string;
  status: CampaignStatus;
  spec: CampaignSpec;
  counts: { total: number; pending: number; live: number; completed: number; unsuccessful: number };
  created_at: string;
  updated_at: string;
}

export interface NumbersAdded {
  accepted: number;
  /** The first rejected rows (at most 1,000); `rejected_count` counts them all. */
  rejected: { row: number; input: string; reason: string }[];
  rejected_count: number;
}

export interface CleanupResult {
  reaped: { from_state: CallState; count: number }[];
  total: number;
}

export interface DiallerCampaign {
  campaign_id: string;
  mode: string;
  dial_ratio: number;
  answer_rate: number;
  aht_seconds: number;
  abandon_rate: number;
  active_dials: number;
  calls_placed: number;
  calls_answered: number;
  calls_abandoned: number;
}

export interface DiallerStatus {
  leader: boolean;
  term: number;
  healthy: boolean;
  unhealthy_reason: string;
  campaigns: DiallerCampaign[];
}

export interface ApiKey {
  id: string;
  name: string;
  role: Role;
  campaign_id: string | null;
  created_at: string;
  created_by: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface CreatedApiKey {
  key: ApiKey;
  secret: string;
}

/** An outgoing webhook endpoint (GET /api/v1/webhooks); its secret is never listed. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string;
  /** Empty: every event type. */
  event_types: string[];
  campaign_id: string | null;
  disabled: boolean;
  created_at: string;
  updated_at: string;
  /** Set while a rotated-out secret still signs beside the new one. */
  previous_secret_expires_at: string | null;
}

/** An endpoint with its signing secret: only in the create and rotate answers. */
export interface WebhookSecret {
  endpoint: WebhookEndpoint;
  secret: string;
}

export type DeliveryOutcome = "delivered" | "retrying" | "dead_lettered";

export interface WebhookDelivery {
  endpoint_id: string;
  event_id: number;
  event_type: string;
  attempt: number;
  at: string;
  status: number | null;
  error: string | null;
  duration_ms: number;
  outcome: DeliveryOutcome;
}

export interface DeadWebhookDelivery {
  job_id: string;
  endpoint_id: string;
  event_id: number;
  event_type: string;
  attempts: number;
  failed_at: string;
  last_error: string;
}

export interface WebhookQueue {
  ready: number;
  delayed: number;
  in_flight: number;
  dead: number;
  expired: number;
  oldest_ready_age_seconds: number;
}
