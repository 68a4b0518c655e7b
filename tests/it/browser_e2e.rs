//! Runs the browser tests (tests/e2e: node's test runner driving headless Chromium) from
//! `cargo test`, against the sensorcast binary cargo has just built. Where node, Chromium or
//! tests/e2e/node_modules are missing they say so loudly and pass, unless
//! SENSORCAST_REQUIRE_E2E=1 (CI), which makes that a failure.

use std::io::Write;
use std::process::Command;

#[test]
fn dashboards_in_headless_chromium() {
    // Its servers and Chromium would compete with a heavy test.
    let _turn = crate::support::shared_turn_blocking();
    let required = std::env::var("SENSORCAST_REQUIRE_E2E").is_ok_and(|v| v == "1");
    let run = Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/e2e/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SENSORCAST_BIN", env!("CARGO_BIN_EXE_sensorcast"))
        .status();
    match run {
        Ok(status) => assert!(
            status.success(),
            "the browser tests failed: node --test tests/e2e/ ({status})"
        ),
        Err(e) if required => panic!("SENSORCAST_REQUIRE_E2E=1 but node does not run: {e}"),
        // Written past the test harness's capture, so that it shows even when the test passes.
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: e2e (no node: {e}); install node and chromium, then npm ci --prefix tests/e2e ***\n"
            );
        }
    }
}
