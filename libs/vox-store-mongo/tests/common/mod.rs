//! Fresh stores on the test server named by `VOX_TEST_MONGO_URL`, one database per test.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test setup: a failure should stop the test")]

use vox_store::conformance::Harness;

/// The test's own database (the harness's guard). Dropped when the test ends, unless it
/// failed: then it is kept and named, to look at.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping database {} of the failed test", self.name);
            return;
        }
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use another.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let client = mongodb::Client::with_uri_str(&url).await.map_err(std::io::Error::other)?;
                client.database(&name).drop().await.map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

pub fn server_url() -> String {
    std::env::var("VOX_TEST_MONGO_URL").unwrap_or_else(|_| {
        panic!("set VOX_TEST_MONGO_URL or run bash ops/test.sh, which starts a server (MongoDB tests never skip)")
    })
}

/// Empty stores in a database of their own.
pub async fn fresh() -> Harness {
    let url = server_url();
    let name = format!("vox_test_{}", vox_domain::ids::random_token(12));
    let stores = vox_store_mongo::open_stores(&url, &name).await.expect("open mongodb stores");
    Harness { stores, guard: Box::new(TestDatabase { url, name }) }
}
