//! `voxctl bench queue`: the work queue's throughput next to BullMQ's, in one run on the
//! same `redis-server`.
//!
//! One workload for every system: 4 producers enqueue `--jobs` small JSON jobs between
//! them (each waits for its enqueue before the next, as a request handler would) while
//! 4 consumers take them one at a time and acknowledge each; the clock runs from the
//! first enqueue to the last acknowledgement. Systems, in this order:
//! - Vox's Redis queue (`RedisWorkQueue`, one Lua script per call);
//! - BullMQ (npm `bullmq`, installed under `~/.cache/vox-bench/bullmq` on first use) doing
//!   the same from one Node process: 4 `Queue` producers, 4 `Worker`s of concurrency 1,
//!   3 attempts with exponential backoff and removal on completion, as Vox's defaults;
//! - Vox's SQLite queue (`SqliteWorkQueue`) in a temporary file, for the embedded setup.
//!
//! Each side is one process with 8 concurrent clients: Vox's are tokio tasks, BullMQ's
//! share Node's one thread, which is how BullMQ is usually run (a process per worker
//! would scale both). Vox's consumers also check that every job arrived exactly once.
//! Keys go under fresh prefixes, deleted afterwards. Build with `--release`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use vox_store::queue::{EnqueueOptions, WorkQueue};

const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;
/// The BullMQ major version the bench installs.
const BULLMQ: &str = "bullmq@5";
/// The longest one system may take.
const SYSTEM_LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The redis-server Vox's queue and BullMQ both run against (e.g.
    /// redis://127.0.0.1:6379); keys go under fresh prefixes and are deleted afterwards.
    #[arg(long, env = "VOX_BENCH_REDIS_URL")]
    pub redis_url: String,
    /// Jobs per system, split between the 4 producers.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(8..=10_000_000))]
    pub jobs: u64,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Node.js, for BullMQ.
    #[arg(long, default_value = "node")]
    pub node: String,
    /// Where BullMQ is (installed with npm when missing). [default: ~/.cache/vox-bench/bullmq]
    #[arg(long)]
    pub bullmq_dir: Option<PathBuf>,
}

/// One system's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemReport {
    /// vox-redis, bullmq or vox-sqlite.
    pub system: String,
    pub title: String,
    pub jobs: u64,
    /// Jobs enqueued, processed and acknowledged per second, end to end.
    pub jobs_per_second: f64,
    pub seconds: f64,
    /// When the producers were done, from the start.
    pub enqueue_seconds: f64,
    /// Jobs the consumers acknowledged.
    pub delivered: u64,
    /// Jobs delivered more than once (Vox's consumers check; BullMQ's report 0).
    pub duplicates: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub jobs: u64,
    pub producers: u64,
    pub consumers: u64,
    pub cores: usize,
    pub systems: Vec<SystemReport>,
    /// Vox's throughput over BullMQ's: above 1, Vox is faster.
    pub vox_redis_over_bullmq: f64,
    pub vox_sqlite_over_bullmq: f64,
}

pub async fn run(args: &Args, out: &mut (impl std::io::Write + Send)) -> anyhow::Result<()> {
    let report = measure(args).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_report(&report, out)?;
    }
    Ok(())
}

pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    let bullmq_dir = match &args.bullmq_dir {
        Some(d) => d.clone(),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; give --bullmq-dir")?;
            PathBuf::from(home).join(".cache").join("vox-bench").join("bullmq")
        }
    };
    // Installing first: a machine that cannot run BullMQ fails before measuring anything.
    let bullmq_version = install_bullmq(&args.node, &bullmq_dir).await?;
    let run_id = vox_domain::ids::random_token(8);

    tracing::info!(jobs = args.jobs, "measuring vox's redis queue");
    let prefix = format!("vox-bench-{run_id}:");
    let redis = vox_store_redis::Redis::connect(&args.redis_url, &prefix).await.context("connect to redis")?;
    let queue: Arc<dyn WorkQueue> = Arc::new(vox_store_redis::RedisWorkQueue::new(redis).await);
    let vox_redis = within("Vox (Redis)", run_vox("vox-redis", "Vox (Redis)", queue, args.jobs)).await?;

    tracing::info!(jobs = args.jobs, "measuring bullmq");
    let bullmq = within("BullMQ", run_bullmq(args, &bullmq_dir, &bullmq_version, &run_id, &prefix)).await?;

    tracing::info!(jobs = args.jobs, "measuring vox's sqlite queue");
    let dir = tempfile::Builder::new().prefix("vox-bench-queue-").tempdir().context("create a temporary folder")?;
    let sqlite = vox_store_sqlite::SqliteWorkQueue::open(&dir.path().join("queue.db")).await?;
    let vox_sqlite = within("Vox (SQLite)", run_vox("vox-sqlite", "Vox (SQLite)", Arc::new(sqlite), args.jobs)).await?;

    for s in [&vox_redis, &bullmq, &vox_sqlite] {
        if s.delivered != args.jobs || s.duplicates != 0 {
            bail!("{}: {} of {} jobs delivered, {} twice", s.title, s.delivered, args.jobs, s.duplicates);
        }
    }
    let over = |a: &SystemReport| a.jobs_per_second / bullmq.jobs_per_second.max(f64::MIN_POSITIVE);
    Ok(Report {
        jobs: args.jobs,
        producers: PRODUCERS,
        consumers: CONSUMERS,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        vox_redis_over_bullmq: over(&vox_redis),
        vox_sqlite_over_bullmq: over(&vox_sqlite),
        systems: vec![vox_redis, bullmq, vox_sqlite],
    })
}

async fn within<T>(title: &str, f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(SYSTEM_LIMIT, f).await {
        Ok(r) => r.with_context(|| format!("measure {title}")),
        Err(_) => bail!("{title} did not finish within {} s", SYSTEM_LIMIT.as_secs()),
    }
}

/// Jobs for producer `p` of [`PRODUCERS`]: an equal share, the first ones taking the rest.
fn share(jobs: u64, p: u64) -> u64 {
    jobs / PRODUCERS + u64::from(p < jobs % PRODUCERS)
}

/// The workload on one of Vox's queues.
async fn run_vox(system: &str, title: &str, queue: Arc<dyn WorkQueue>, jobs: u64) -> anyhow::Result<SystemReport> {
    let name = "bench";
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..share(jobs, p) {
                let payload = serde_json::json!({"event": "call.ended", "call_id": format!("ca_{p}_{i}"), "n": i});
                let body = serde_json::to_vec(&payload)?;
                queue.enqueue(name, &body, &EnqueueOptions::default(), Utc::now()).await?;
            }
            anyhow::Ok(started.elapsed())
        }));
    }
    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let (queue, acked) = (queue.clone(), acked.clone());
        consumers.push(tokio::spawn(async move {
            let consumer = format!("bench-{c}");
            let mut seen = Vec::new();
            while acked.load(Ordering::SeqCst) < jobs {
                match queue.reserve(name, &consumer, chrono::Duration::seconds(60), Utc::now()).await? {
                    Some(job) => {
                        queue.ack(&job.receipt, Utc::now()).await?;
                        acked.fetch_add(1, Ordering::SeqCst);
                        seen.push(job.id);
                    }
                    // Empty for now: the producers are behind.
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
            anyhow::Ok(seen)
        }));
    }
    let mut enqueue_seconds: f64 = 0.0;
    for p in producers {
        enqueue_seconds = enqueue_seconds.max(p.await.context("producer task")??.as_secs_f64());
    }
    let mut ids = HashSet::new();
    let mut duplicates = 0;
    for c in consumers {
        for id in c.await.context("consumer task")?? {
            if !ids.insert(id) {
                duplicates += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(SystemReport {
        system: system.into(),
        title: title.into(),
        jobs,
        jobs_per_second: jobs as f64 / seconds,
        seconds,
        enqueue_seconds,
        delivered: ids.len() as u64 + duplicates,
        duplicates,
    })
}

/// Installs BullMQ under `dir` when it is not there; returns its version.
async fn install_bullmq(node: &str, dir: &Path) -> anyhow::Result<String> {
    let version = || -> Option<String> {
        let text = std::fs::read_to_string(dir.join("node_modules/bullmq/package.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["version"].as_str().map(String::from)
    };
    let out = tokio::process::Command::new(node).arg("--version").output().await;
    match out {
        Ok(o) if o.status.success() => {}
        _ => bail!("{node} (Node.js) is not installed: BullMQ needs it (apt-get install nodejs npm)"),
    }
    if let Some(v) = version() {
        return Ok(v);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "installing {BULLMQ} with npm");
    let out = tokio::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(dir)
        .arg(BULLMQ)
        .output()
        .await
        .context("run npm (apt-get install npm)")?;
    if !out.status.success() {
        bail!("npm install {BULLMQ} into {} failed:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    version().with_context(|| format!("npm installed {BULLMQ}, but {} has no bullmq", dir.display()))
}

/// The same workload on BullMQ, from one Node process; it also deletes Vox's keys
/// (`vox_prefix`) once done, as it holds a Redis client anyway.
async fn run_bullmq(
    args: &Args,
    dir: &Path,
    version: &str,
    run_id: &str,
    vox_prefix: &str,
) -> anyhow::Result<SystemReport> {
    let script = dir.join("vox-bench-queue.mjs");
    std::fs::write(&script, BULLMQ_SCRIPT).with_context(|| format!("write {}", script.display()))?;
    let out = tokio::process::Command::new(&args.node)
        .arg(&script)
        .args([&args.redis_url, &args.jobs.to_string(), run_id, vox_prefix])
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .context("run node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("the BullMQ run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).with_context(|| format!("no result in {stdout}"))?;
    #[derive(Deserialize)]
    struct Run {
        seconds: f64,
        enqueue_seconds: f64,
        completed: u64,
    }
    let run: Run = serde_json::from_str(line).with_context(|| format!("read the BullMQ result {line}"))?;
    Ok(SystemReport {
        system: "bullmq".into(),
        title: format!("BullMQ {version} (Redis)"),
        jobs: args.jobs,
        jobs_per_second: args.jobs as f64 / run.seconds.max(f64::MIN_POSITIVE),
        seconds: run.seconds,
        enqueue_seconds: run.enqueue_seconds,
        delivered: run.completed,
        duplicates: 0,
    })
}

const BULLMQ_SCRIPT: &str = r#"// Written by voxctl bench queue: BullMQ doing Vox's queue workload.
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const [url, jobsArg, runId, voxPrefix] = process.argv.slice(2);
const jobs = Number(jobsArg);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
const prefix = `vox-bench-bullmq-${runId}`;
const name = 'bench';
const producers = Array.from({ length: 4 }, () => new Queue(name, { connection, prefix }));
let completed = 0;
let finish;
const finished = new Promise((resolve) => { finish = resolve; });
const workers = Array.from({ length: 4 }, () => {
  const w = new Worker(name, async () => null, { connection, prefix, concurrency: 1, autorun: false });
  w.on('completed', () => { if (++completed === jobs) finish(); });
  w.on('failed', (job, err) => { console.error('failed', job?.id, err); process.exit(2); });
  return w;
});
await Promise.all([...producers, ...workers].map((x) => x.waitUntilReady()));

const started = performance.now();
for (const w of workers) w.run();
const share = (p) => Math.floor(jobs / 4) + (p < jobs % 4 ? 1 : 0);
await Promise.all(producers.map(async (q, p) => {
  for (let i = 0; i < share(p); i++) {
    await q.add('job', { event: 'call.ended', call_id: `ca_${p}_${i}`, n: i },
      { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true });
  }
}));
const enqueued = performance.now();
await finished;
const done = performance.now();
console.log(JSON.stringify({ seconds: (done - started) / 1000, enqueue_seconds: (enqueued - started) / 1000, completed }));

await Promise.all(workers.map((w) => w.close()));
await producers[0].obliterate({ force: true });
await Promise.all(producers.map((q) => q.close()));
const redis = new IORedis(connection);
for (const pattern of [`${prefix}:*`, `${voxPrefix}*`]) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
await redis.quit();
"#;

fn print_report(r: &Report, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "work queue: {} jobs, {} producers -> {} consumers (one at a time, ack each), one process per system, \
         {} cores",
        r.jobs, r.producers, r.consumers, r.cores
    )?;
    writeln!(
        out,
        "{:<26} {:>10} {:>9} {:>11} {:>10} {:>11}",
        "system", "jobs/s", "seconds", "enqueued s", "delivered", "duplicates"
    )?;
    for s in &r.systems {
        writeln!(
            out,
            "{:<26} {:>10.0} {:>9.2} {:>11.2} {:>10} {:>11}",
            s.title, s.jobs_per_second, s.seconds, s.enqueue_seconds, s.delivered, s.duplicates
        )?;
    }
    writeln!(
        out,
        "Vox (Redis) / BullMQ: {:.2}x   Vox (SQLite) / BullMQ: {:.2}x",
        r.vox_redis_over_bullmq, r.vox_sqlite_over_bullmq
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_share_every_job() {
        for jobs in [8, 9, 10, 11, 20_000] {
            assert_eq!((0..PRODUCERS).map(|p| share(jobs, p)).sum::<u64>(), jobs);
        }
    }
}
