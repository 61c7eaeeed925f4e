//! Running part of a test in another process.
//!
//! A test re-executes its own test binary filtered to itself, with
//! `HSMUX_TESTS_CHILD=<test name>` and a role; in the child the same test function sees
//! the variable and plays that role. The parent asserts that the child's single test
//! passed, and shows the child's output when it did not.

use std::process::Command;

/// Environment variable naming the test a child process runs.
pub const CHILD_ENV: &str = "HSMUX_TESTS_CHILD";
/// Environment variable carrying the role the child plays.
pub const ROLE_ENV: &str = "HSMUX_TESTS_ROLE";

/// The role this process plays for `test`, if it is a child spawned for it.
pub fn child_role(test: &str) -> Option<String> {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test) {
        Some(std::env::var(ROLE_ENV).unwrap_or_default())
    } else {
        None
    }
}

/// Runs `test` of the current test binary in a new process with `role` and extra `envs`,
/// and fails unless that process ran exactly this one test and it passed.
#[track_caller]
pub fn run_child(test: &str, role: &str, envs: &[(&str, String)]) {
    let exe = std::env::current_exe().expect("current test binary");
    let mut command = Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env(ROLE_ENV, role);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command.output().expect("spawn child test process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child process for `{test}` (role `{role}`) failed with {}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// Runs `body` in a fresh process (nothing initialised), as test `test`.
///
/// In the parent this spawns the child and checks it; in the child it runs `body`.
#[track_caller]
pub fn in_fresh_process(test: &str, body: impl FnOnce()) {
    if child_role(test).is_some() {
        body();
    } else {
        run_child(test, "fresh", &[]);
    }
}
