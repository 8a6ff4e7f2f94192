//! What a system under test costs, read from `/proc`: CPU time (utime + stime) of every
//! process of the system, and their resident memory. Linux only, like the fleet itself.
//!
//! A system is a few named roles ("voxgate", "workers", "uvicorn", "nginx"), each a set of
//! pids; CPU is the difference between two snapshots, memory the peak sum seen by a
//! sampler during the run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The processes of one system, by role.
#[derive(Debug, Clone, Default)]
pub struct Roles(pub Vec<(String, Vec<u32>)>);

impl Roles {
    pub fn add(&mut self, role: &str, pids: Vec<u32>) {
        self.0.push((role.to_string(), pids));
    }

    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|(_, p)| p.iter().copied())
    }
}

/// `(ppid, utime + stime in clock ticks)` of `pid`, or None once it is gone.
pub fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields count from the
    // last ')'.
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Resident memory of `pid` in KiB (`VmRSS`), or None once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The live children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect();
    out.sort_unstable();
    out
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on every
/// Linux this runs on, which is also the fallback).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// CPU ticks of every pid, for a later difference.
#[derive(Debug, Clone)]
pub struct CpuSnapshot(BTreeMap<u32, u64>);

impl CpuSnapshot {
    pub fn take(pids: impl Iterator<Item = u32>) -> Self {
        CpuSnapshot(pids.filter_map(|pid| stat(pid).map(|(_, t)| (pid, t))).collect())
    }

    /// This process's own ticks (the benchmark's client).
    pub fn own() -> u64 {
        stat(std::process::id()).map_or(0, |(_, t)| t)
    }

    /// CPU milliseconds each role spent since `self` (a process gone by now counts what
    /// it had at the first snapshot, which is nothing).
    pub fn ms_since(&self, roles: &Roles, ticks_per_second: u64) -> BTreeMap<String, f64> {
        let now = CpuSnapshot::take(roles.pids());
        roles
            .0
            .iter()
            .map(|(role, pids)| {
                let ticks: u64 = pids
                    .iter()
                    .map(|pid| {
                        now.0.get(pid).copied().unwrap_or(0).saturating_sub(self.0.get(pid).copied().unwrap_or(0))
                    })
                    .sum();
                (role.clone(), ticks as f64 * 1000.0 / ticks_per_second as f64)
            })
            .collect()
    }
}

/// The peak resident memory of a system while it runs: every `every`, the sum over its
/// processes; the highest sum and each role's share at that moment.
#[derive(Debug)]
pub struct RssSampler {
    peak: Arc<Mutex<(u64, BTreeMap<String, u64>)>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(roles: Roles, every: Duration) -> Self {
        let peak = Arc::new(Mutex::new((0u64, BTreeMap::new())));
        let task = tokio::spawn({
            let peak = Arc::clone(&peak);
            async move {
                loop {
                    let by_role: BTreeMap<String, u64> = roles
                        .0
                        .iter()
                        .map(|(role, pids)| (role.clone(), pids.iter().filter_map(|p| rss_kib(*p)).sum()))
                        .collect();
                    let total = by_role.values().sum();
                    if let Ok(mut p) = peak.lock()
                        && total > p.0
                    {
                        *p = (total, by_role);
                    }
                    tokio::time::sleep(every).await;
                }
            }
        });
        RssSampler { peak, task }
    }

    /// The peak total (KiB) and each role's KiB at that moment.
    pub fn stop(self) -> (u64, BTreeMap<String, u64>) {
        self.task.abort();
        self.peak.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let (ppid, _) = stat(me).unwrap();
        assert_eq!(ppid, std::os::unix::process::parent_id());
        assert!(rss_kib(me).unwrap() > 100, "a running test uses some memory");
        assert!(children_of(ppid).contains(&me));
        assert!(stat(u32::MAX).is_none() && rss_kib(u32::MAX).is_none());
    }

    #[test]
    fn cpu_differences_are_per_role() {
        let me = std::process::id();
        let roles = Roles(vec![("me".into(), vec![me]), ("gone".into(), vec![u32::MAX])]);
        let before = CpuSnapshot::take(roles.pids());
        let own_before = CpuSnapshot::own();
        // Spin until this process has had 120 ms of CPU (or 10 s have passed): on a busy
        // machine 120 ms of wall time may bring far less than 50 ms of CPU.
        let want = ticks_per_second() * 120 / 1000;
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while CpuSnapshot::own().saturating_sub(own_before) < want && spin.elapsed() < Duration::from_secs(10) {
            for _ in 0..10_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        let ms = before.ms_since(&roles, ticks_per_second());
        assert!(ms["me"] >= 50.0, "{ms:?} after spinning {x} times");
        assert_eq!(ms["gone"], 0.0);
    }
}
