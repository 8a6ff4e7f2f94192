//! Prometheus metrics shared by the binaries: registration, and the `/metrics` text with
//! the figures every process exports (build identity, CPU, memory, file descriptors).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Metric, Registry};

/// Registers `metric` in `registry` under `name` and returns it for the caller to keep
/// (metrics are shared handles: the clone in the registry and the one returned are one).
pub fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The text every Vox `/metrics` answers: `vox_build_info`, the process figures and the
/// request figures ([`crate::requests`]), then the service's own registry. `service` names the binary in `vox_build_info`.
pub fn render(service: &str, registry: &Registry) -> String {
    let mut out = String::new();
    let mut standard = Registry::default();
    let build = prometheus_client::metrics::family::Family::<Vec<(&'static str, String)>, Gauge>::default();
    build
        .get_or_create(&vec![
            ("service", service.to_string()),
            ("version", crate::build::VERSION.to_string()),
            ("git_sha", crate::build::GIT_SHA.to_string()),
        ])
        .set(1);
    standard.register("vox_build_info", "The running build: version and git commit (always 1)", build);
    standard.register_collector(Box::new(Process));
    crate::requests::register(&mut standard);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &standard);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, registry);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// The standard process figures (the names Prometheus' own clients use), read from
/// /proc on each scrape; elsewhere than Linux they are left out.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessFigures::read() else { return Ok(()) };
        let counter = |e: &mut DescriptorEncoder, name, help, v: f64| -> Result<(), std::fmt::Error> {
            ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        let gauge = |e: &mut DescriptorEncoder, name, help, v: f64| -> Result<(), std::fmt::Error> {
            ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        counter(&mut encoder, "process_cpu_seconds", "User and system CPU time spent, seconds", p.cpu_seconds)?;
        gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size, bytes", p.resident_bytes)?;
        gauge(&mut encoder, "process_virtual_memory_bytes", "Virtual memory size, bytes", p.virtual_bytes)?;
        gauge(&mut encoder, "process_start_time_seconds", "Start time since the Unix epoch, seconds", p.start_time)?;
        gauge(&mut encoder, "process_open_fds", "Open file descriptors", p.open_fds)?;
        gauge(&mut encoder, "process_threads", "OS threads", p.threads)?;
        Ok(())
    }
}

/// Linux reports process times in USER_HZ, which is 100 on every architecture Vox runs on.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    open_fds: f64,
    threads: f64,
}

impl ProcessFigures {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Self::parse(&stat, &status, &boot, open_fds)
    }

    fn parse(stat: &str, status: &str, boot: &str, open_fds: usize) -> Option<Self> {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())?
                .parse::<f64>()
                .ok()
        };
        let btime = boot.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<f64>().ok())?;
        Some(ProcessFigures {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: kib("VmRSS:")? * 1024.0,
            virtual_bytes: kib("VmSize:")? * 1024.0,
            start_time: btime + field(22)? / USER_HZ,
            open_fds: open_fds as f64,
            threads: field(20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[test]
    fn proc_figures_parse_including_a_command_name_with_spaces() {
        let stat = "1234 (vox gate) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 5000 123456 789 18446744073709551615";
        let status = "Name:\tvoxgate\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\n";
        let p = ProcessFigures::parse(stat, status, boot, 12).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.resident_bytes, 10_485_760.0);
        assert_eq!(p.virtual_bytes, 209_715_200.0);
        assert_eq!(p.start_time, 1_700_000_050.0);
        assert_eq!(p.threads, 7.0);
        assert_eq!(p.open_fds, 12.0);
    }

    #[test]
    fn every_service_renders_its_build_and_process_figures() {
        let mut registry = Registry::with_prefix("voxtest");
        let c = registered(
            &mut registry,
            "things",
            "Things",
            prometheus_client::metrics::counter::Counter::<u64>::default(),
        );
        c.inc();
        let text = render("voxtest", &registry);
        assert!(
            text.contains(&format!(
                "vox_build_info{{service=\"voxtest\",version=\"{}\",git_sha=\"{}\"}} 1",
                crate::build::VERSION,
                crate::build::GIT_SHA
            )),
            "{text}"
        );
        assert!(text.contains("voxtest_things_total 1"), "{text}");
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_start_time_seconds "] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
