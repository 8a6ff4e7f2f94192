//! What was built: the workspace version and the git commit (see `build.rs`).

/// The workspace version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from (12 hex digits), or `unknown`.
pub const GIT_SHA: &str = env!("VOX_GIT_SHA");

/// `0.1.0+<commit>`: semver with the commit as build metadata. Every binary reports this
/// as its version (`--version`, `/health`, heartbeats), so a rollback can be confirmed.
pub const FULL_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("VOX_GIT_SHA"));
