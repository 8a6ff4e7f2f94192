//! Host figures for heartbeats, read from /proc (Linux). Elsewhere they read as zero.

use std::sync::Mutex;

/// CPU use since the previous sample, as a percentage of one core times the cores
/// (0..=100 × cores, like `top`), and memory in bytes.
#[derive(Debug, Default)]
pub struct HostSampler {
    last: Mutex<Option<(u64, u64)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostFigures {
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
}

impl HostSampler {
    pub fn sample(&self) -> HostFigures {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu_percent = match read_cpu() {
            Some((busy, total)) => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                let pct = match *last {
                    Some((b0, t0)) if total > t0 => {
                        (busy.saturating_sub(b0)) as f64 / (total - t0) as f64 * 100.0 * cores
                    }
                    _ => 0.0,
                };
                *last = Some((busy, total));
                pct
            }
            None => 0.0,
        };
        let (memory_total_bytes, memory_used_bytes) = read_memory().unwrap_or((0, 0));
        HostFigures { cpu_percent, memory_used_bytes, memory_total_bytes }
    }
}

/// (busy jiffies, all jiffies) from the first line of /proc/stat.
fn read_cpu() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (total, used) bytes from /proc/meminfo; used = total - available.
fn read_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some((total, total.saturating_sub(available)))
}
