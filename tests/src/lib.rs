//! End-to-end tests that cross processes and the browser: `tests/console.rs` starts a real
//! voxbridge, voxgate (serving the built console) and, when the browser script asks, a
//! voxcore host with the node secret the console showed, and drives the console in
//! headless Chromium (`console/e2e/console.e2e.mjs`, playwright-core); `tests/multi_host.rs`
//! spreads a cluster over loopback addresses (two voxbridges, two fleet hosts, two
//! gateways) behind a real HAProxy and kills a host and a gateway under calls. The
//! library is empty; everything lives in the integration tests.
