//! Checks made before anything starts, so a missing binary or a taken port fails with
//! what to do about it instead of a child's log line.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The three executables a cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub voxbridge: PathBuf,
    pub voxcore: PathBuf,
    pub voxgate: PathBuf,
    /// The demo's, when asked for.
    pub voxdialler: PathBuf,
    pub voxsim: PathBuf,
}

impl Binaries {
    /// Finds the binaries in `bin_dir`, or next to the running voxctl when it is `None`,
    /// naming every one that is missing.
    pub fn locate(bin_dir: Option<&Path>, demo: bool) -> anyhow::Result<Self> {
        let (dir, from_flag) = match bin_dir {
            Some(d) => (d.to_path_buf(), true),
            None => {
                let exe = std::env::current_exe().context("find the voxctl executable")?;
                let dir = exe.parent().context("the voxctl executable has no folder")?.to_path_buf();
                (dir, false)
            }
        };
        let demo_bins: &[&str] = if demo { &["voxdialler", "voxsim"] } else { &[] };
        let missing: Vec<&str> = ["voxbridge", "voxcore", "voxgate"]
            .iter()
            .chain(demo_bins)
            .copied()
            .filter(|name| !dir.join(name).is_file())
            .collect();
        if !missing.is_empty() {
            let looked = if from_flag { "--bin-dir (VOX_BIN_DIR)" } else { "the folder of voxctl" };
            bail!(
                "cannot find {} in {} ({looked}); build them with `cargo build -p voxbridge -p voxcore -p voxgate -p voxdialler -p voxsim` \
                 (or run `bash ops/run.sh`), or point --bin-dir (VOX_BIN_DIR) at the folder that holds them",
                missing.join(", "),
                dir.display(),
            );
        }
        Ok(Binaries {
            voxbridge: dir.join("voxbridge"),
            voxcore: dir.join("voxcore"),
            voxgate: dir.join("voxgate"),
            voxdialler: dir.join("voxdialler"),
            voxsim: dir.join("voxsim"),
        })
    }
}

/// Fails if `addr` cannot be bound now; port 0 always can.
pub fn port_free(addr: SocketAddr, process: &str, flag: &str) -> anyhow::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{addr} (for {process}) is already in use: stop what listens there (another `voxctl up`, or a {process} \
             left from an earlier run: `ss -ltnp 'sport = :{port}'` shows it), or choose another address with {flag}",
            port = addr.port(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "{addr} (for {process}) is not an address of this machine. Each fleet host and gateway of a spread \
             cluster listens on its own loopback address; Linux has all of 127.0.0.0/8, but macOS only \
             127.0.0.1: add the others with `sudo ifconfig lo0 alias {ip} up` (one per address), or choose \
             another with {flag}",
            ip = addr.ip(),
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} for {process}; choose another with {flag}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_binaries_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("voxcore"), "").unwrap();
        let err = Binaries::locate(Some(dir.path()), false).unwrap_err().to_string();
        assert!(err.contains("voxbridge, voxgate") && !err.contains("voxcore,"), "{err}");
        assert!(err.contains("--bin-dir") && err.contains("cargo build"), "{err}");

        std::fs::write(dir.path().join("voxbridge"), "").unwrap();
        std::fs::write(dir.path().join("voxgate"), "").unwrap();
        let found = Binaries::locate(Some(dir.path()), false).unwrap();
        assert_eq!(found.voxgate, dir.path().join("voxgate"));
    }

    #[test]
    fn a_taken_port_is_named_with_its_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = port_free(addr, "voxgate", "--gateway-listen").unwrap_err().to_string();
        assert!(
            err.contains(&addr.to_string()) && err.contains("voxgate") && err.contains("--gateway-listen"),
            "{err}"
        );
        drop(taken);
        port_free(addr, "voxgate", "--gateway-listen").unwrap();
        port_free("127.0.0.1:0".parse().unwrap(), "voxgate", "--gateway-listen").unwrap();
    }
}
