//! Runs the built `conveyorctl` against a spawned `conveyor-api`, as a script
//! would (URL and token from the environment).

use std::process::Command;

use serde_json::Value;

use crate::{bin_path, ApiProcess};

/// What one run of `conveyorctl` did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts exit 0 and nothing on stderr; answers stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "conveyorctl failed: {self:#?}");
        assert!(self.stderr.is_empty(), "unexpected stderr: {self:#?}");
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Asserts the exit code and an `error: <code>: …` line on stderr, nothing on stdout.
    #[track_caller]
    pub fn failed(&self, code: i32, error_code: &str) {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(self.stdout.is_empty(), "stdout on failure: {self:#?}");
        assert!(
            self.stderr.starts_with(&format!("error: {error_code}")),
            "stderr should start with `error: {error_code}`: {self:#?}"
        );
    }
}

/// Runs `conveyorctl args` against `url` with `token` in the environment (None:
/// no token).
pub async fn run_ctl(url: &str, token: Option<&str>, args: &[&str]) -> Ran {
    let mut cmd = Command::new(bin_path("conveyorctl"));
    cmd.args(args)
        .env("CONVEYOR_URL", url)
        .env_remove("CONVEYOR_TOKEN");
    if let Some(token) = token {
        cmd.env("CONVEYOR_TOKEN", token);
    }
    // Off the runtime thread, so in-process workers keep running meanwhile.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("conveyorctl runs");
    Ran {
        code: out.status.code().expect("exit code (not a signal)"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

impl ApiProcess {
    /// Runs `conveyorctl args` against this API with its admin token.
    pub async fn ctl(&self, args: &[&str]) -> Ran {
        run_ctl(&self.url, Some(&self.token), args).await
    }
}
