//! Waiting for started processes: their reported address, their `/health`, and the
//! gateway's view of the fleet. Every wait has a deadline whose error names what is not
//! ready and where its log is, and gives up at once if any child exits meanwhile.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::children::Children;

/// How long each stage of `voxctl up` may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Fails if any child has exited, with its status and the end of its log.
pub fn none_exited(children: &mut Children) -> anyhow::Result<()> {
    if let Some((p, status)) = children.first_exited()? {
        bail!(
            "{} exited ({status}) before the cluster was ready; its log is {}, ending with:\n{}",
            p.name,
            p.log_path.display(),
            p.log_tail(20)
        );
    }
    Ok(())
}

/// The `host:port` a process wrote to `file` once listening, as a URL clients can use
/// (an unspecified address such as 0.0.0.0 is reached through loopback).
pub async fn address_url(children: &mut Children, name: &str, file: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(addr) = text.trim().parse::<SocketAddr>()
        {
            return Ok(client_url(addr));
        }
        none_exited(children)?;
        if Instant::now() > deadline {
            bail!(
                "{name} did not report its address in {} within {READY_TIMEOUT:?}; {}",
                file.display(),
                log_hint(children, name)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn client_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Polls `GET <url>/health` until it answers 200.
pub async fn healthy(children: &mut Children, client: &reqwest::Client, name: &str, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match client.get(format!("{url}/health")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        none_exited(children)?;
        if Instant::now() > deadline {
            bail!(
                "{name} at {url}/health was not healthy within {READY_TIMEOUT:?} ({last}); {}",
                log_hint(children, name)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls gateway `gateway`'s `GET /health/fleet` until `fleet_available` is `slots` and
/// its `GET /health` until it holds a worker token (workers refuse a gateway without
/// one, so until then it sees the slots but cannot use them). `hosts` name the fleet
/// host processes whose logs explain a fleet that does not come.
pub async fn fleet_available(
    children: &mut Children,
    client: &reqwest::Client,
    gateway: &str,
    gateway_url: &str,
    slots: u32,
    hosts: &[&str],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{gateway_url}/health/fleet");
    loop {
        let last = match fleet_reading(client, &url).await {
            Ok(free) if free == u64::from(slots) => match worker_token(client, gateway_url).await {
                Ok(true) => return Ok(()),
                Ok(false) => format!("{gateway_url}/health says it has no worker token from voxbridge yet"),
                Err(e) => format!("{e:#}"),
            },
            Ok(free) => format!("{url}: it reports fleet_available {free} of {slots}"),
            Err(e) => format!("{url}: {e:#}"),
        };
        none_exited(children)?;
        if Instant::now() > deadline {
            let host_logs: Vec<String> = hosts.iter().map(|h| log_path(children, h)).collect();
            bail!(
                "the fleet was not ready within {READY_TIMEOUT:?}: {last}; see the fleet hosts' logs {} and the \
                 gateway's log {}",
                host_logs.join(", "),
                log_path(children, gateway),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn fleet_reading(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let r = client.get(url).send().await?.error_for_status()?;
    let body: serde_json::Value = r.json().await?;
    body.get("fleet_available")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| anyhow::anyhow!("no fleet_available in {body}"))
}

/// Whether the gateway holds a worker token (a gateway that does not say is taken to).
async fn worker_token(client: &reqwest::Client, gateway_url: &str) -> anyhow::Result<bool> {
    let r = client.get(format!("{gateway_url}/health")).send().await?.error_for_status()?;
    let body: serde_json::Value = r.json().await?;
    Ok(body.get("worker_token").and_then(serde_json::Value::as_bool).unwrap_or(true))
}

/// Every worker gateway `gateway_url` knows, as (fleet node id, worker index, URL), from
/// its `GET /health/fleet`: where the fleet hosts really advertise their workers.
pub async fn worker_endpoints(
    client: &reqwest::Client,
    gateway_url: &str,
) -> anyhow::Result<Vec<(String, u32, String)>> {
    let url = format!("{gateway_url}/health/fleet");
    let r = client.get(&url).send().await?.error_for_status()?;
    let body: serde_json::Value = r.json().await?;
    let workers = body.get("workers").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    Ok(workers
        .iter()
        .filter_map(|w| {
            let node = w.get("node_id")?.as_str()?.to_string();
            let index = u32::try_from(w.get("worker_index")?.as_u64()?).ok()?;
            let url = w.get("url")?.as_str()?.to_string();
            Some((node, index, url))
        })
        .collect())
}

fn log_path(children: &mut Children, name: &str) -> String {
    children.get_mut(name).map_or_else(|| "(not started)".into(), |p| p.log_path.display().to_string())
}

fn log_hint(children: &mut Children, name: &str) -> String {
    format!("its log is {}", log_path(children, name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unspecified_addresses_are_reached_through_loopback() {
        assert_eq!(client_url("0.0.0.0:7070".parse().unwrap()), "http://127.0.0.1:7070");
        assert_eq!(client_url("[::]:8080".parse().unwrap()), "http://[::1]:8080");
        assert_eq!(client_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }
}
