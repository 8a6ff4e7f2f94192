//! The MongoDB family passes the storage conformance suite, against a real server.

mod common;

use common::fresh;

vox_store::conformance_tests!(fresh);
