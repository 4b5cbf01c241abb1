//! Helpers shared by the CLI tests (`cli.rs`, `compile_cmd.rs`, `test_cmd.rs`): scratch
//! folders, running the `aclc` binary, and reading what it printed.
// Each test file uses only some of the helpers.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// `testdata/examples`: `policy.hujson`, `inventory.json`, `invalid.hujson`.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/examples")
}

/// `testdata/features`: policies of the language features real policies use, and their
/// inventories.
pub fn features() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/features")
}

/// A fresh scratch directory for one test.
pub fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-tests")
        .join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `text` to `name` in a fresh scratch directory; returns the directory and the path.
pub fn file(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = scratch();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Run `aclc` in `dir` with `args` and optional standard input. `NO_COLOR` is removed, so
/// that the absence of colour is shown to come from output not being a terminal.
pub fn aclc_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aclc"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        // aclc may exit before reading (a usage error): a closed pipe is fine.
        match child.stdin.take().unwrap().write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
    }
    child.wait_with_output().unwrap()
}

/// Run `aclc` with `args` in a fresh scratch directory.
pub fn aclc(args: &[&str]) -> Output {
    aclc_in(&scratch(), args, None)
}

/// What it printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// What it printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Its stdout as JSON; the panic shows both streams.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}
