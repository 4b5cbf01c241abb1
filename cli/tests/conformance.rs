//! Golden-corpus harness: runs the `aclc` binary on every conformance case the way `check.py`
//! does, in two modes, each held to its own ratchet in `testdata/conformance/`:
//!
//! - compile mode (`check.py`'s default): `aclc compile` on all cases, every recorded node
//!   compared with `check.py`'s normalisation; ratchet `compile.passing`;
//! - check mode (`check.py --mode check --skip-tests`): `aclc check`, verdict and message only,
//!   without the cases refused because their tests failed; ratchet `check.passing`.
//!
//! Cases listed in a ratchet must keep passing; the lists only grow. Newly passing cases are
//! printed; `ACLC_UPDATE_RATCHET=1 cargo test -p aclc --test conformance` adds them (it never
//! removes an id). `ACLC_BIN=path` scores another build of `aclc` instead of this one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "conformance/judge.rs"]
mod judge;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aclc_testkit::corpus::{self, compare::Problem, Ratchet};
use serde_json::Value;

/// Seconds allowed per case, as `check.py`'s default `--timeout`.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The two ways `check.py` scores a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `aclc compile`, the full comparison (`check.py`'s default).
    Compile,
    /// `aclc check`, the verdict only (`check.py --mode check --skip-tests`).
    Check,
}

impl Mode {
    /// The subcommand, and the mode's name in `check.py`.
    fn name(self) -> &'static str {
        match self {
            Mode::Compile => "compile",
            Mode::Check => "check",
        }
    }

    /// The ratchet file in `testdata/conformance`.
    fn ratchet(self) -> Ratchet {
        Ratchet::open(&format!("{}.passing", self.name()))
    }

    /// Whether the mode scores this case (`--skip-tests` leaves out refusals by failed tests).
    fn scores(self, case: &Value) -> bool {
        match self {
            Mode::Compile => true,
            Mode::Check => case["expect"]["tests"] != "fail",
        }
    }
}

/// The binary under test: this package's `aclc`, or `$ACLC_BIN`.
fn aclc_binary() -> PathBuf {
    std::env::var_os("ACLC_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_aclc")), PathBuf::from)
}

/// Outcome of one case: no problems when it passed.
struct Outcome {
    id: String,
    category: String,
    problems: Vec<Problem>,
}

/// What one run of the binary left: exit code, stdout, stderr.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Write the case's policy and inventory (its `topology` plus `tailnet`) to a scratch folder
/// and run `aclc MODE POLICY --inventory INVENTORY --format json` with a time limit.
fn run_binary(mode: Mode, case: &Value, scratch: &Path) -> Result<Run, String> {
    let dir = scratch.join(corpus::id(case));
    std::fs::create_dir_all(&dir).unwrap();
    let suffix = if case["policy"]["format"] == "hujson" {
        "hujson"
    } else {
        "json"
    };
    let policy = dir.join(format!("policy.{suffix}"));
    std::fs::write(&policy, corpus::policy_text(case)).unwrap();
    let inventory_path = dir.join("inventory.json");
    std::fs::write(&inventory_path, corpus::inventory_json(case).to_string()).unwrap();
    // Output goes to files, so a large document cannot block the child while we poll it.
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let binary = aclc_binary();
    let mut child = Command::new(&binary)
        .arg(mode.name())
        .arg(&policy)
        .arg("--inventory")
        .arg(&inventory_path)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let run = status.map(|status| Run {
        code: status.code(),
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
    });
    let _ = std::fs::remove_dir_all(&dir);
    run.ok_or_else(|| format!("timed out after {}s", TIMEOUT.as_secs()))
}

/// Run and judge one case as `check.py`'s `run_case` does.
fn run_case(mode: Mode, case: &Value, scratch: &Path) -> Vec<Problem> {
    let run = match run_binary(mode, case, scratch) {
        Ok(run) => run,
        Err(message) => return vec![("run", message)],
    };
    // `json.loads(stdout or "null")`, anything unparsable being `None`.
    let out: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    let expect = &case["expect"];
    match mode {
        Mode::Check => judge::check_verdict(expect, run.code, &out),
        Mode::Compile => {
            judge::compile_verdict(corpus::category(case), expect, run.code, &out, &run.stderr)
        }
    }
}

/// Run every case the mode scores on all cores, sorted by id.
fn run_all(mode: Mode) -> Vec<Outcome> {
    let cases: Vec<Value> = corpus::all_cases()
        .into_iter()
        .filter(|c| mode.scores(c))
        .collect();
    let scratch =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("conformance-{}", mode.name()));
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(cases.len()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = Outcome {
                    id: corpus::id(case).to_string(),
                    category: corpus::category(case).to_string(),
                    problems: run_case(mode, case, &scratch),
                };
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    outcomes
}

/// Print the score like `check.py`, then hold the outcomes to the mode's ratchet.
fn score_and_ratchet(mode: Mode) {
    let outcomes = run_all(mode);
    assert!(outcomes.len() > 600, "only {} cases found", outcomes.len());
    let ratchet = mode.ratchet();

    let mut per_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut part_fail: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        let entry = per_category.entry(&o.category).or_default();
        entry.1 += 1;
        entry.0 += usize::from(o.problems.is_empty());
        let parts: BTreeSet<&str> = o.problems.iter().map(|(part, _)| *part).collect();
        for part in parts {
            *part_fail.entry(part).or_default() += 1;
        }
        if let Some((_, first)) = o.problems.first() {
            println!("FAIL {}/{}: {first}", o.category, o.id);
        }
    }
    for (category, (ok, total)) in &per_category {
        println!("{category:12} {ok:4}/{total:<4} passed");
    }
    if !part_fail.is_empty() {
        let mut parts: Vec<(&str, usize)> = part_fail.into_iter().collect();
        parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = parts.iter().map(|(p, n)| format!("{p} {n}")).collect();
        println!("failing cases by part: {}", parts.join(", "));
    }
    let passing: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o.problems.is_empty())
        .map(|o| o.id.clone())
        .collect();
    println!(
        "conformance ({}): {}/{} passed",
        mode.name(),
        passing.len(),
        outcomes.len()
    );

    let defects = corpus::known_defects(mode.name());
    for o in &outcomes {
        let key = format!("{}/{}", o.category, o.id);
        if defects.contains(&key) && o.problems.is_empty() {
            println!("known defect {key} passes now: update DEFECTS.md");
        }
    }

    let by_id: BTreeMap<&str, &Outcome> = outcomes.iter().map(|o| (o.id.as_str(), o)).collect();
    let regressions: Vec<String> = ratchet
        .regressions(&passing)
        .into_iter()
        .map(|id| match by_id.get(id.as_str()) {
            Some(o) => {
                let why: Vec<&str> = o.problems.iter().take(4).map(|(_, m)| m.as_str()).collect();
                format!("{}/{}: {}", o.category, id, why.join("; "))
            }
            None => format!("{id}: no such case"),
        })
        .collect();
    ratchet.report_and_update(&passing);
    assert!(
        regressions.is_empty(),
        "{} case(s) listed in {} no longer pass in {} mode:\n    {}",
        regressions.len(),
        ratchet.path().display(),
        mode.name(),
        regressions.join("\n    ")
    );
}

#[test]
fn compile_mode_ratchet() {
    score_and_ratchet(Mode::Compile);
}

#[test]
fn check_mode_ratchet() {
    score_and_ratchet(Mode::Check);
}
