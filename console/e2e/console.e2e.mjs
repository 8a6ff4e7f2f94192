// The console end to end in a real headless Chromium (Debian's, driven by playwright-core),
// against the voxgate + voxbridge that tests/tests/console.rs started. It does what an
// operator does, screen by screen, saving a screenshot of each in $VOX_ARTIFACTS.
//
// Talks to the Rust test on stdout/stdin: after registering a backend node it prints
//   VOX_E2E_START_WORKER <api secret read off the screen>
// and waits for "started" on stdin, then watches the node come online without a reload.
//
// Env: VOX_URL, VOX_ADMIN_EMAIL, VOX_ADMIN_PASSWORD, VOX_ARTIFACTS, VOX_CHROMIUM.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const URL = need("VOX_URL");
const ADMIN = { email: need("VOX_ADMIN_EMAIL"), password: need("VOX_ADMIN_PASSWORD") };
const VIEWER = { email: "viewer@vox.test", password: "viewer password 123" };
const SHOTS = need("VOX_ARTIFACTS");
const STORAGE_SECRET = "storage-secret-e2e-7f3a9c";

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`console.e2e: ${name} is not set (run it through tests/tests/console.rs)`);
    process.exit(2);
  }
  return v;
}

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let shot = 0;
let step = "start";
const consoleErrors = [];
let expectedRefusals = 0;

function log(msg) {
  console.log(`e2e: ${msg}`);
}

async function snap(page, name) {
  shot += 1;
  const file = join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function nav(page, label) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label, exact: true }).click();
}

async function login(page, user, viaKeyboard = false) {
  await page.getByLabel("Email").waitFor();
  if (viaKeyboard) {
    // Keyboard only: the email field has focus on arrival.
    await page.keyboard.type(user.email);
    await page.keyboard.press("Tab");
    await page.keyboard.type(user.password);
    await page.keyboard.press("Enter");
  } else {
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.getByTestId("role").waitFor();
}

const profile = mkdtempSync(join(tmpdir(), "vox-e2e-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.VOX_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 860 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(30_000);
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (m) => {
  if (m.type() !== "error") return;
  const url = m.location()?.url ?? "";
  // Expected refusals the console handles and words itself: no dialler in this cluster
  // (503), routes another change adds (404), the wrong password tried on purpose (401),
  // and the token spoiled on purpose to show the session ending (401).
  const expected =
    m.text().startsWith("Failed to load resource") &&
    (/\/api\/v1\/dialler$/.test(url) ||
      /\/storage\/test$/.test(url) ||
      /\/recording$/.test(url) ||
      (/\/api\/v1\/(auth\/login|auth\/me|dashboard\/stream|nodes|regions|audit|dialler)/.test(url) &&
        m.text().includes("401")));
  if (expected) expectedRefusals += 1;
  else consoleErrors.push(`${m.text()} (${url})`);
});
page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));

let failed = false;
try {
  step = "sign-in page";
  await page.goto(URL);
  await page.getByRole("heading", { name: "Vox console" }).waitFor();
  await snap(page, "login");
  await page.getByLabel("Email").fill(ADMIN.email);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Wrong email or password.").waitFor();
  await snap(page, "login-wrong-password");
  await page.getByLabel("Password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("role").waitFor();
  assert((await page.getByTestId("role").textContent()) === "admin", "signed in as admin");

  step = "dashboard";
  await page.getByTestId("capacity-proxy-value").filter({ hasText: "1/1" }).waitFor();
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
  await snap(page, "dashboard");

  step = "create a region with storage";
  await nav(page, "Regions");
  await page.getByRole("button", { name: "Add region" }).click();
  await page.getByLabel("Country").selectOption("DE");
  await page.getByLabel("Region name").fill("eu-central-1");
  await page.getByRole("button", { name: "Create region" }).click();
  await page.getByTestId("storage-form").waitFor();
  await page.getByLabel("Endpoint URL").fill("http://127.0.0.1:9");
  await page.getByLabel("Bucket").fill("recordings");
  await page.getByLabel("Access key").fill("vox-access");
  await page.getByLabel("Secret key", { exact: true }).fill(STORAGE_SECRET);
  await page.getByLabel("SSL: reach the endpoint over HTTPS").check();
  assert((await page.getByLabel("Endpoint URL").inputValue()) === "https://127.0.0.1:9", "SSL switches the scheme");
  await page.getByRole("button", { name: "Save storage" }).click();
  await page.getByText("Storage settings saved.").waitFor();
  await page.getByTestId("secret-masked").waitFor();
  await page.reload();
  await page.getByTestId("secret-masked").waitFor();
  assert((await page.locator("input[name=secret_key]").count()) === 0, "no secret input once it is set");
  assert(!(await page.content()).includes(STORAGE_SECRET), "the storage secret is not on the page");
  assert((await page.getByLabel("Endpoint URL").inputValue()) === "https://127.0.0.1:9", "endpoint kept");
  assert(await page.getByLabel("SSL: reach the endpoint over HTTPS").isChecked(), "SSL kept");
  await snap(page, "region-storage-masked");
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByTestId("storage-test-result").waitFor();
  log(`storage test says: ${await page.getByTestId("storage-test-result").textContent()}`);
  await snap(page, "region-storage-test");
  await nav(page, "Regions");
  await page.getByTestId("region-eu-central-1").waitFor();
  await snap(page, "regions");

  step = "register a backend node and see its secret once";
  await page.getByTestId("region-eu-central-1").click();
  await page.getByRole("tab", { name: "Nodes" }).click();
  await page.getByText("No nodes in this region").waitFor();
  await page.getByRole("button", { name: "Add backend" }).click();
  assert((await page.getByLabel("SIP port").inputValue()) === "5080", "backend SIP port defaults to 5080");
  await page.getByLabel("Name").fill("fleet-eu-1");
  await page.getByLabel("Endpoint / IP").fill("http://127.0.0.1:5002");
  await page.getByRole("button", { name: "Register and show its secret" }).click();
  await page.getByTestId("secret-dialog").waitFor();
  const secret = (await page.getByTestId("node-secret").textContent()).trim();
  const nodeId = (await page.getByTestId("registered-node-id").textContent()).trim();
  assert(secret.startsWith(`vxn.${nodeId}.`), `a node secret for ${nodeId}: ${secret.slice(0, 12)}…`);
  assert(
    (await page.getByTestId("node-config-line").textContent()).trim() === `VOX_NODE_SECRET=${secret}`,
    "the config line carries the secret",
  );
  const dialog = page.getByTestId("secret-dialog");
  await dialog.getByRole("button", { name: "Copy api secret" }).click();
  await dialog.getByRole("button", { name: /Copied|Select and copy/ }).waitFor();
  await snap(page, "node-secret-once");
  await page.getByRole("button", { name: "I have saved the secret" }).click();
  await page.getByTestId(`node-row-${nodeId}`).waitFor();
  assert(!(await page.content()).includes(secret), "the secret is gone once the dialog closes");

  step = "dashboard shows the silent node, then it comes online without a reload";
  await nav(page, "Dashboard");
  await page.getByTestId("capacity-backend-value").filter({ hasText: "0/1" }).waitFor();
  await page.getByTestId("silent-nodes").filter({ hasText: "fleet-eu-1" }).waitFor();
  await snap(page, "dashboard-registered-not-heartbeating");
  await page.evaluate(() => {
    window.__voxNoReload = true;
  });
  console.log(`VOX_E2E_START_WORKER ${secret}`);
  const reply = await stdinLines.next();
  assert(!reply.done && reply.value.trim() === "started", `the test started the worker (got ${reply.value})`);
  await page.getByTestId("capacity-backend-value").filter({ hasText: "1/1" }).waitFor({ timeout: 90_000 });
  await page.getByTestId("worker-slots").filter({ hasText: "2/2" }).waitFor({ timeout: 30_000 });
  assert(await page.evaluate(() => window.__voxNoReload === true), "the page was not reloaded");
  await page.getByTestId("silent-nodes").waitFor({ state: "detached", timeout: 10_000 });
  await snap(page, "dashboard-node-online");

  step = "nodes and maintenance";
  await nav(page, "Nodes");
  await page.getByTestId(`node-row-${nodeId}`).filter({ hasText: "online" }).waitFor();
  await snap(page, "nodes");
  await page.getByRole("link", { name: "fleet-eu-1" }).click();
  await page.getByTestId("node-summary").filter({ hasText: "online" }).waitFor();
  await page.getByTestId("worker-slot").first().waitFor();
  await snap(page, "node-detail");
  await page.getByRole("button", { name: "Maintenance", exact: true }).click();
  const consequence = await page.getByTestId("lifecycle-consequence").textContent();
  assert(/new calls/.test(consequence) && /live call/.test(consequence), `says what happens to calls: ${consequence}`);
  await page.getByLabel("Reason").fill("kernel update");
  await snap(page, "node-maintenance-confirm");
  await page.getByRole("button", { name: "Confirm maintenance" }).click();
  await page.getByTestId("desired-state").filter({ hasText: "Maintenance" }).waitFor();
  await page.getByTestId("worker-slot").filter({ hasText: "draining" }).first().waitFor({ timeout: 30_000 });
  await page.getByTestId("audit-table").filter({ hasText: "kernel update" }).waitFor({ timeout: 15_000 });
  await page.getByRole("button", { name: "Resume", exact: true }).waitFor();
  await snap(page, "node-in-maintenance");

  step = "singletons";
  await nav(page, "Singletons");
  await page.getByTestId("singleton-console").waitFor();
  await page.getByRole("button", { name: "Run cleanup now" }).click();
  await page.getByTestId("cleanup-result").waitFor();
  await snap(page, "singletons");

  step = "campaign with a CSV upload";
  await nav(page, "Campaigns");
  await page.getByText("No campaigns yet").waitFor();
  await snap(page, "campaigns-empty");
  await page.getByRole("link", { name: "New campaign" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Spring outreach");
  await page.getByLabel("Region").selectOption({ label: "eu-central-1" });
  await page.getByLabel("Caller id").fill("+14155550100");
  await page.getByLabel("Time zone").fill("Europe/Berlin");
  await snap(page, "campaign-form");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.getByRole("heading", { name: /Spring outreach/ }).waitFor();
  await page.getByTestId("csv-input").setInputFiles({
    name: "numbers.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("number\n+14155550123\nnot-a-number\n+14155550124\n"),
  });
  await page.getByRole("button", { name: "Upload" }).click();
  const bad = page.getByTestId("rejected-row-3");
  await bad.waitFor();
  assert((await bad.textContent()).includes("not-a-number"), "row 3 names its value");
  assert((await page.getByTestId("upload-result").textContent()).includes("2 numbers added"), "two rows added");
  await page.getByTestId("count-total").filter({ hasText: "2" }).waitFor();
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByRole("button", { name: "Pause" }).waitFor();
  // No dialler in this cluster: the console says so instead of failing.
  await page.getByTestId("pacing").filter({ hasText: "Dialler not running" }).waitFor();
  await snap(page, "campaign-upload-errors");
  await page.getByRole("link", { name: "Edit", exact: true }).click();
  await page.getByLabel("Max concurrency").fill("25");
  await page.getByLabel("Regime").selectOption("ofcom");
  await page.getByRole("button", { name: "Save campaign" }).click();
  await page.getByText("1 · 25").waitFor();

  step = "abandon ledger, compliance report and do-not-call";
  await page.getByTestId("compliance-setting").filter({ hasText: "Ofcom (24 hours)" }).waitFor();
  await page.getByTestId("ledger-24h").filter({ hasText: "0 abandoned of 0 live answers" }).waitFor();
  await page.getByTestId("ledger-verdict").filter({ hasText: "Within the limit" }).waitFor();
  await page.getByTestId("dnc-csv").setInputFiles({
    name: "dnc.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("number\n+14155550199\n12\n"),
  });
  await page.getByTestId("dnc").getByRole("button", { name: "Add", exact: true }).click();
  await page.getByTestId("dnc-result").filter({ hasText: "1 added" }).waitFor();
  assert((await page.getByTestId("dnc-rejected").textContent()).includes("12"), "the bad row of the file is named");
  await page.getByTestId("dnc-+14155550199").waitFor();
  const [report] = await Promise.all([page.waitForEvent("download"), page.getByTestId("compliance-report").click()]);
  assert(report.suggestedFilename().startsWith("compliance-"), `the report is a named CSV: ${report.suggestedFilename()}`);
  await snap(page, "campaign-ledger-dnc");

  step = "calls and a call's timeline";
  await page.getByRole("link", { name: "See this campaign's calls →" }).click();
  await page.getByTestId("calls-table").waitFor();
  assert((await page.getByTestId("calls-table").locator("tbody tr").count()) === 2, "two calls for the campaign");
  await page.getByLabel("State").selectOption("pending");
  const today = new Date();
  const day = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, "0")}-${String(today.getDate()).padStart(2, "0")}`;
  await page.getByLabel("From").fill(day);
  await page.getByLabel("To").fill(day);
  await page.waitForURL(/from=.*to=/);
  await page.getByTestId("calls-table").locator("tbody tr").nth(1).waitFor();
  assert((await page.getByTestId("calls-table").locator("tbody tr").count()) === 2, "both calls were made today");
  await snap(page, "calls");
  await page.getByTestId("calls-table").locator("tbody tr a").first().click();
  await page.getByTestId("timeline").waitFor();
  await snap(page, "call-detail");

  step = "audit log";
  await nav(page, "Audit log");
  await page.getByTestId("audit-table").filter({ hasText: "kernel update" }).waitFor();
  await snap(page, "audit");

  step = "users";
  await nav(page, "Users");
  await page.getByRole("button", { name: "Add user" }).click();
  await page.getByLabel("Email").fill(VIEWER.email);
  await page.getByLabel("Password").fill(VIEWER.password);
  await page.getByRole("radio", { name: /^Viewer/ }).check();
  await page.getByRole("button", { name: "Add user" }).last().click();
  await page.getByTestId("users-table").filter({ hasText: VIEWER.email }).waitFor();
  await snap(page, "users");

  step = "api keys";
  await nav(page, "API keys");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByLabel("Name").fill("CRM e2e");
  await page.getByRole("radio", { name: /^Operator/ }).check();
  await page.getByRole("button", { name: "Create key" }).last().click();
  const keySecret = (await page.getByTestId("api-key-secret").textContent()).trim();
  assert(/^vk\.ak_[0-9a-z]{16}\.[0-9a-z]{32}$/.test(keySecret), `the secret is shown once: ${keySecret}`);
  await snap(page, "api-key-created");
  const withKey = () => fetch(`${URL}/api/v1/calls`, { headers: { Authorization: `Bearer ${keySecret}` } });
  assert((await withKey()).status === 200, "the new key reads calls");
  await page.getByRole("button", { name: "Done" }).click();
  const keyRow = page.getByTestId("api-keys-table").getByRole("row").filter({ hasText: "CRM e2e" });
  await keyRow.waitFor();
  assert(!(await page.content()).includes(keySecret), "the secret is gone from the page");
  page.once("dialog", (d) => d.accept());
  await keyRow.getByRole("button", { name: "Revoke" }).click();
  await keyRow.filter({ hasText: "revoked" }).waitFor();
  assert((await withKey()).status === 401, "a revoked key is refused at once");
  await snap(page, "api-keys");

  step = "webhooks";
  await nav(page, "Webhooks");
  await page.getByTestId("webhook-queue").waitFor();
  await page.getByTestId("dead-letters").waitFor();
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByLabel("URL").fill("https://crm.example.com/vox/events");
  await page.getByLabel("Description").fill("CRM e2e webhook");
  await page.getByRole("checkbox", { name: "call.ended", exact: true }).check();
  await page.getByRole("button", { name: "Add endpoint" }).last().click();
  const hookSecret = (await page.getByTestId("webhook-secret").textContent()).trim();
  assert(/^whsec_[A-Za-z0-9+/]{20,}={0,2}$/.test(hookSecret), `the signing secret is shown once: ${hookSecret}`);
  await snap(page, "webhook-created");
  await page.getByRole("button", { name: "Done" }).click();
  const hookRow = page.getByTestId("webhooks-table").getByRole("row").filter({ hasText: "CRM e2e webhook" });
  await hookRow.filter({ hasText: "call.ended" }).filter({ hasText: "enabled" }).waitFor();
  assert(!(await page.content()).includes(hookSecret), "the signing secret is gone from the page");
  const adminToken = await page.evaluate(() => JSON.parse(localStorage.getItem("vox.session")).token);
  const listed = await (await fetch(`${URL}/api/v1/webhooks`, { headers: { Authorization: `Bearer ${adminToken}` } })).text();
  assert(listed.includes("crm.example.com") && !listed.includes(hookSecret), "the API lists the endpoint, never its secret");
  await hookRow.getByRole("button", { name: "Deliveries" }).click();
  await page.getByTestId("webhook-deliveries").waitFor();
  await hookRow.getByRole("button", { name: "Disable" }).click();
  await hookRow.filter({ hasText: "disabled" }).waitFor();
  await snap(page, "webhooks");

  step = "a webhook that always fails ends in the dead letters, and is requeued";
  const api = (method, path, body) =>
    fetch(`${URL}/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: body && JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
  // A receiver that answers 503 (3 attempts, 1 s then 2 s apart) until it is "fixed".
  let receiverUp = false;
  const received = [];
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (receiverUp) received.push({ id: req.headers["webhook-id"], body });
      res.writeHead(receiverUp ? 200 : 503).end();
    });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  const refused = await api("POST", "/webhooks", {
    url: hookUrl,
    description: "refusing e2e receiver",
    event_types: ["campaign.state_changed"],
  });
  assert(refused.status === 201, `the failing endpoint is added: ${JSON.stringify(refused.body)}`);
  const running = (await api("GET", "/campaigns")).body.campaigns.find((c) => c.status === "running");
  assert(running, "the campaign started above is running");
  assert((await api("POST", `/campaigns/${running.id}/pause`)).status === 200, "the campaign pauses");
  const deadRow = page.getByTestId("dead-letters").getByRole("row").filter({ hasText: "campaign.state_changed" });
  await deadRow.waitFor({ timeout: 20000 });
  // The endpoint list polls too: the row names the endpoint by its URL once it is listed.
  await deadRow.filter({ hasText: hookUrl }).waitFor();
  await page.getByTestId("webhook-queue").filter({ hasText: /Dead\s*1/ }).waitFor();
  await snap(page, "webhook-dead-letters");
  receiverUp = true;
  await deadRow.getByRole("button", { name: "Requeue" }).click();
  await page.getByTestId("dead-letters").getByText("1 requeued").waitFor();
  for (let i = 0; i < 150 && received.length === 0; i++) await new Promise((ok) => setTimeout(ok, 100));
  assert(received.length === 1, `the requeued delivery arrives once: ${received.length}`);
  assert(JSON.parse(received[0].body).type === "campaign.state_changed", "it is the paused campaign's event");
  const refusedRow = page.getByTestId("webhooks-table").getByRole("row").filter({ hasText: "refusing e2e receiver" });
  await refusedRow.getByRole("button", { name: "Deliveries" }).click();
  await page.getByTestId("webhook-deliveries").getByText("dead letter").first().waitFor();
  await page.getByTestId("webhook-deliveries").getByText("delivered").first().waitFor();
  await snap(page, "webhook-requeued-delivered");
  receiver.close();
  page.once("dialog", (d) => d.accept());
  await refusedRow.getByRole("button", { name: "Delete" }).click();
  await refusedRow.waitFor({ state: "detached" });

  step = "a phone-sized screen";
  await nav(page, "Dashboard");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId("capacity-backend").waitFor();
  await snap(page, "phone-dashboard");
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Nodes" }).waitFor();
  await snap(page, "phone-menu");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Nodes" }).click();
  await page.getByTestId("node-table").waitFor();
  await snap(page, "phone-nodes");
  await page.setViewportSize({ width: 1280, height: 860 });

  step = "a viewer sees no lifecycle controls";
  await page.getByRole("button", { name: "Sign out" }).click();
  await login(page, VIEWER, true);
  assert((await page.getByTestId("role").textContent()) === "viewer", "signed in as viewer");
  assert(
    (await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Users" }).count()) === 0,
    "a viewer has no Users screen",
  );
  await page.goto(`${URL}/nodes/${nodeId}`);
  await page.getByTestId("node-summary").waitFor();
  await page.getByTestId("audit-table").waitFor();
  assert((await page.getByTestId("lifecycle").count()) === 0, "no lifecycle section for a viewer");
  for (const name of ["Maintenance", "Resume", "Disable", "Shutdown", "Rotate API secret…", "Delete node…"]) {
    assert((await page.getByRole("button", { name, exact: true }).count()) === 0, `no ${name} button for a viewer`);
  }
  await snap(page, "viewer-node-detail");
  await page.goto(`${URL}/regions`);
  await page.getByTestId("region-eu-central-1").waitFor();
  assert((await page.getByRole("button", { name: "Add region" }).count()) === 0, "a viewer cannot add regions");

  step = "an expired session ends with a message";
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("vox.session"));
    s.expiresAt = new Date(Date.now() - 1000).toISOString();
    localStorage.setItem("vox.session", JSON.stringify(s));
  });
  await page.reload();
  await page.getByTestId("session-ended").filter({ hasText: "Your session expired" }).waitFor();
  await login(page, VIEWER);

  step = "an invalid session ends with a message";
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("vox.session"));
    s.token = "not-a-valid-token";
    localStorage.setItem("vox.session", JSON.stringify(s));
  });
  await page.reload();
  await page.getByTestId("session-ended").waitFor();
  await snap(page, "session-ended");

  assert(consoleErrors.length === 0, `no console errors, but saw:\n  ${consoleErrors.join("\n  ")}`);
  log(`no console errors (${expectedRefusals} expected refusals logged by the browser, each handled on screen)`);
  log(`passed: ${shot} screenshots in ${SHOTS}`);
} catch (e) {
  failed = true;
  console.error(`e2e: FAILED at step "${step}": ${e.stack ?? e}`);
  if (consoleErrors.length) console.error(`e2e: console errors so far:\n  ${consoleErrors.join("\n  ")}`);
  try {
    await page.screenshot({ path: join(SHOTS, "FAILED.png"), fullPage: true });
    console.error(`e2e: the page at the failure: ${join(SHOTS, "FAILED.png")}`);
  } catch {
    // the browser is gone
  }
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
