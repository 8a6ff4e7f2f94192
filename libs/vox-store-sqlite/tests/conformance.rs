//! The embedded family passes the storage conformance suite.

use vox_store::conformance::Harness;

async fn fresh() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = vox_store_sqlite::open_stores(&dir.path().join("vox.db")).expect("open sqlite stores");
    Harness { stores, guard: Box::new(dir) }
}

vox_store::conformance_tests!(fresh);
