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

/// Polls the gateway's `GET /health/fleet` until `fleet_available` is `slots`.
pub async fn fleet_available(
    children: &mut Children,
    client: &reqwest::Client,
    gateway_url: &str,
    slots: u32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{gateway_url}/health/fleet");
    loop {
        let last = match fleet_reading(client, &url).await {
            Ok(free) if free == u64::from(slots) => return Ok(()),
            Ok(free) => format!("it reports fleet_available {free} of {slots}"),
            Err(e) => format!("{e:#}"),
        };
        none_exited(children)?;
        if Instant::now() > deadline {
            bail!(
                "the fleet was not ready within {READY_TIMEOUT:?}: {url}: {last}; see the voxcore host's log {} \
                 and voxgate's log {}",
                log_path(children, "voxcore"),
                log_path(children, "voxgate"),
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
