//! Hostile inputs through the `aclc` binary (issue 9: never crash, bounded time and memory on
//! any input). Each input is generated here, at test time, into a scratch folder: deep and
//! wide IP set graphs, a hundred thousand diagnostics on one line, a rule naming a hundred
//! thousand hosts, ten thousand failing tests, an oversized policy and `/dev/zero`.
//!
//! Every run must exit with one of aclc's statuses (0 to 3; a panic is 101, a signal none),
//! within [`TIME_LIMIT`] (killed past it) and, where Linux lets the test see it, with a peak
//! resident memory under [`MEMORY_LIMIT_KIB`] (killed past it). The peak comes from GNU
//! `time -f %M` when `/usr/bin/time` is there, else from polling `VmHWM` in
//! `/proc/PID/status`; without either the memory check is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{examples, scratch};

/// How long one run may take. Generous: a debug build on a busy 2-core machine.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Peak resident memory allowed to one run.
const MEMORY_LIMIT_KIB: u64 = 256 * 1024;

/// What a bounded run of `aclc` did.
#[derive(Debug)]
struct Outcome {
    /// The exit status; `None` when killed (over time or memory) or ended by a signal.
    status: Option<i32>,
    elapsed: Duration,
    /// Peak resident memory, when it could be measured.
    peak_kib: Option<u64>,
    /// Why the test killed it, if it did.
    killed: Option<String>,
    /// The first lines of stderr.
    stderr_head: String,
}

/// True when GNU time runs here and reports `%M`.
fn gnu_time() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let out = scratch().join("time-probe");
        Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&out)
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
            && std::fs::read_to_string(&out).is_ok_and(|t| {
                t.trim()
                    .lines()
                    .last()
                    .is_some_and(|l| l.parse::<u64>().is_ok())
            })
    })
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The pid of `aclc`: the child itself, or the child of the `time` wrapper.
fn aclc_pid(child: &Child, wrapped: bool) -> Option<u32> {
    if !wrapped {
        return Some(child.id());
    }
    let pid = child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn kill(child: &mut Child, pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = child.kill();
}

/// Run `aclc ARGS` in `dir`, output to files, within the time and memory limits. Runs are
/// serialised: each gets the machine to itself, so the time limit measures aclc.
fn run_bounded(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Outcome {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let wrapped = gnu_time();
    let time_file = dir.join("time.out");
    let stderr_file = dir.join("stderr.txt");
    let mut command = if wrapped {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o"])
            .arg(&time_file)
            .arg(env!("CARGO_BIN_EXE_aclc"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_aclc"))
    };
    let start = Instant::now();
    let mut child = command
        .args(args)
        .current_dir(dir)
        .stdin(stdin.map_or_else(Stdio::null, |p| File::open(p).unwrap().into()))
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let mut polled: Option<u64> = None;
    let mut killed = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let pid = aclc_pid(&child, wrapped);
        if let Some(hwm) = pid.and_then(vm_hwm) {
            polled = Some(polled.unwrap_or(0).max(hwm));
            if hwm > MEMORY_LIMIT_KIB {
                killed = Some(format!("peak memory {hwm} KiB over the limit"));
            }
        }
        if start.elapsed() > TIME_LIMIT {
            killed = Some(format!("still running after {TIME_LIMIT:?}"));
        }
        if killed.is_some() {
            kill(&mut child, pid);
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // GNU time writes "Command exited with non-zero status N" or "Command terminated by
    // signal N" before the figure; the figure is the last line.
    let timed = std::fs::read_to_string(&time_file)
        .ok()
        .and_then(|t| t.trim().lines().last()?.trim().parse::<u64>().ok());
    let mut stderr_head = String::new();
    if let Ok(text) = std::fs::read(&stderr_file) {
        let text = String::from_utf8_lossy(&text[..text.len().min(2000)]).into_owned();
        // GNU time reports a child's death by signal on stderr too: keep it.
        stderr_head = text.lines().take(12).collect::<Vec<_>>().join("\n");
    }
    Outcome {
        status: if killed.is_some() {
            None
        } else {
            status.code()
        },
        elapsed,
        peak_kib: match (timed, polled) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        killed,
        stderr_head,
    }
}

/// Run and assert the issue's bounds; returns the outcome for further checks.
fn assert_bounded(dir: &Path, args: &[&str]) -> Outcome {
    assert_bounded_with(dir, args, None)
}

/// [`assert_bounded`] with standard input read from a file.
fn assert_bounded_with(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Outcome {
    let outcome = run_bounded(dir, args, stdin);
    eprintln!(
        "aclc {}: status {:?} in {:.2?}, peak {} KiB",
        args.join(" "),
        outcome.status,
        outcome.elapsed,
        outcome.peak_kib.map_or("?".to_string(), |k| k.to_string())
    );
    assert!(
        outcome.killed.is_none(),
        "aclc {args:?}: {}\n{}",
        outcome.killed.as_deref().unwrap_or_default(),
        outcome.stderr_head
    );
    assert!(
        matches!(outcome.status, Some(0..=3)),
        "aclc {args:?}: exit status {:?} (0-3 expected)\n{}",
        outcome.status,
        outcome.stderr_head
    );
    assert!(
        !outcome.stderr_head.contains("panicked"),
        "{}",
        outcome.stderr_head
    );
    if let Some(peak) = outcome.peak_kib {
        assert!(
            peak <= MEMORY_LIMIT_KIB,
            "aclc {args:?}: peak memory {peak} KiB"
        );
    }
    outcome
}

fn inventory() -> PathBuf {
    examples().join("inventory.json")
}

/// A scratch folder holding `policy.hujson` with `text`.
fn with_policy(text: &str) -> PathBuf {
    let dir = scratch();
    std::fs::write(dir.join("policy.hujson"), text).unwrap();
    dir
}

/// `check`, `compile` and `test` of `policy.hujson` in `dir` against the example inventory.
fn every_command(dir: &Path) {
    let inventory = inventory();
    let inventory = inventory.to_str().unwrap();
    for command in ["check", "compile", "test"] {
        assert_bounded(dir, &[command, "policy.hujson", "--inventory", inventory]);
    }
}

/// Tags of the example inventory, so policies naming them are valid.
const TAG_OWNERS: &str =
    r#""tagOwners": {"tag:web": [], "tag:db": [], "tag:router": [], "tag:exit": []}"#;

/// Every command of `policy` is bounded, and `compile` refuses it (exit 2) with a message
/// holding `says`.
fn refused_over_budget(policy: &str, says: &str) {
    let dir = with_policy(policy);
    every_command(&dir);
    let inventory = inventory();
    let args = [
        "compile",
        "policy.hujson",
        "--format",
        "human",
        "--inventory",
        inventory.to_str().unwrap(),
    ];
    let out = assert_bounded(&dir, &args);
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr_head.contains(says), "{}", out.stderr_head);
}

/// One grant of 6,000 destinations and 6,000 `ip` entries (a 100 KB policy) asks for 36
/// million rule items, one per pair: its compile held 7 GB and aborted on a failed allocation.
/// Refused now before any item is made (`CompileLimits::max_rule_items`).
#[test]
fn a_grant_of_six_thousand_destinations_by_six_thousand_ports() {
    let dsts = vec![r#""*""#; 6000].join(",");
    let ips: Vec<String> = (1..=6000).map(|p| format!(r#""tcp:{p}""#)).collect();
    let policy = format!(
        r#"{{{TAG_OWNERS}, "grants": [{{"src": ["*"], "dst": [{dsts}], "ip": [{}]}}]}}"#,
        ips.join(",")
    );
    refused_over_budget(&policy, "rule items");
}

/// An IP set of 20,000 separate internet prefixes as the destination of 300 ports: the exit
/// node's filter would hold 6 million entries. Refused, naming the node
/// (`CompileLimits::max_node_filter_entries`).
#[test]
fn an_ip_set_of_twenty_thousand_prefixes_times_three_hundred_ports() {
    let prefixes: Vec<String> = (0..20_000)
        .map(|i| format!(r#""1.{}.{}.0/24""#, i / 128, (i % 128) * 2))
        .collect();
    let ips: Vec<String> = (1..=300).map(|p| format!(r#""tcp:{p}""#)).collect();
    let policy = format!(
        r#"{{{TAG_OWNERS}, "ipsets": {{"ipset:far": [{}]}},
            "grants": [{{"src": ["*"], "dst": ["ipset:far"], "ip": [{}]}}]}}"#,
        prefixes.join(","),
        ips.join(",")
    );
    refused_over_budget(&policy, "node exit-1's packet filter");
}

/// `ipset:s20` removes `ipset:s19`, which removes `ipset:s18`, ... each level naming the one
/// below twice, so resolving without memoising costs 2^20 visits.
#[test]
fn deep_ipset_remove_chain() {
    let mut sets = vec![r#""ipset:s0": ["100.64.0.0/10"]"#.to_string()];
    for i in 1..=20 {
        sets.push(format!(
            r#""ipset:s{i}": ["100.64.0.0/10", "remove ipset:s{p}", "add 10.{i}.0.0/16", "remove ipset:s{p}"]"#,
            p = i - 1
        ));
    }
    let policy = format!(
        r#"{{{TAG_OWNERS}, "ipsets": {{{}}},
            "acls": [{{"action": "accept", "src": ["ipset:s20"], "dst": ["ipset:s20:*", "tag:web:80"]}}]}}"#,
        sets.join(",\n")
    );
    every_command(&with_policy(&policy));
}

/// A chain of 1,500 IP sets, each the next one plus an IPv6 /64 less one address: 2.25
/// million ranges in all, within the range budget. Every set was written out as wire pieces
/// (a text and a set per range): 0.7 GB here, 2.4 GB at 2,800, where `diff` aborted on a
/// failed allocation. Only the set a rule names is written out now.
#[test]
fn ipset_chain_of_prefixes_less_one_address() {
    let depth = 1500;
    let mut sets: Vec<String> = (0..depth)
        .map(|i| {
            format!(
                r#""ipset:s{i}": ["add ipset:s{}", "add fd00:{i:x}::/64", "remove fd00:{i:x}::1"]"#,
                i + 1
            )
        })
        .collect();
    sets.push(format!(r#""ipset:s{depth}": ["fd00:ffff::/64"]"#));
    let policy = format!(
        r#"{{{TAG_OWNERS}, "ipsets": {{{}}},
            "acls": [{{"action": "accept", "src": ["ipset:s0"], "dst": ["tag:web:22"]}}]}}"#,
        sets.join(",\n")
    );
    every_command(&with_policy(&policy));
}

/// A `tests` entry from a group of 1,000 devices past 2,000 rules to other hosts: every
/// source address was judged against every rule, each against every destination device,
/// O(sources x rules x destinations) (6 s in a release build at this size, 50 s at twice
/// it). Each rule's reach of the destination is decided once per question now. `explain`
/// asks the same question.
#[test]
fn a_test_from_a_group_past_thousands_of_rules() {
    let n = 2000;
    let dir = group_tailnet(n);
    let rules: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"action": "accept", "src": ["group:all"], "dst": ["10.0.{}.{}:22"]}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    let policy = format!(
        r#"{{"tagOwners": {{"tag:web": []}}, "groups": {{"group:all": [{}]}},
            "acls": [{}, {{"action": "accept", "src": ["group:all"], "dst": ["tag:web:22"]}}],
            "tests": [{{"src": "group:all", "accept": ["tag:web:22"], "deny": ["tag:web:23"]}}]}}"#,
        all_users(n),
        rules.join(",\n")
    );
    let explain = [
        "explain",
        "policy.hujson",
        "--inventory",
        "inventory.json",
        "group:all",
        "tag:web:22",
    ];
    each_exits_0(&dir, &policy, &[&TEST, &explain]);
}

/// An `sshTests` entry from a group of 8,000 devices to 8,000 tagged ones: every (source,
/// destination) pair was judged, O(sources x destinations) (6 s in a release build at this
/// size). Devices whose SSH rules are alike are judged once now. `explain --ssh` asks the
/// same question.
#[test]
fn an_ssh_test_from_a_group_to_thousands_of_devices() {
    let n = 16_000;
    let dir = group_tailnet(n);
    let policy = format!(
        r#"{{"tagOwners": {{"tag:web": []}}, "groups": {{"group:all": [{}]}},
            "ssh": [{{"action": "accept", "src": ["group:all"], "dst": ["tag:web"], "users": ["root"]}}],
            "sshTests": [{{"src": "group:all", "dst": ["tag:web"], "accept": ["root"], "deny": ["admin"]}}]}}"#,
        all_users(n)
    );
    let explain = [
        "explain",
        "policy.hujson",
        "--inventory",
        "inventory.json",
        "--ssh",
        "group:all",
        "tag:web",
        "root",
    ];
    each_exits_0(&dir, &policy, &[&TEST, &explain]);
}

/// 400 SSH rules, each from its own user to `tag:web` (2,000 devices), and one `sshTests`
/// entry: every destination's rules were kept, O(rules x devices) of memory (1.8 GB at 2,000
/// x 2,000, and an abort at 4,000); only one copy per kind of destination is kept now.
#[test]
fn an_ssh_test_over_devices_that_each_have_hundreds_of_rules() {
    let n = 4000;
    let dir = group_tailnet(n);
    let rules: Vec<String> = (0..n / 10)
        .map(|i| {
            format!(
                r#"{{"action": "accept", "src": ["u{i}@example.com"], "dst": ["tag:web"], "users": ["user{i}"]}}"#
            )
        })
        .collect();
    let policy = format!(
        r#"{{"tagOwners": {{"tag:web": []}}, "ssh": [{}],
            "sshTests": [{{"src": "u0@example.com", "dst": ["tag:web"], "accept": ["user0"], "deny": ["root"]}}]}}"#,
        rules.join(",\n")
    );
    each_exits_0(&dir, &policy, &[&TEST]);
}

/// 400 ICMP tests without a port, each from its own user under a grant of its own, to
/// `tag:web` (2,000 devices): an assertion without a port takes every rule as a candidate,
/// and each rule's reach was computed over every destination device, O(tests x rules x
/// devices). Only rules that take some source address have their reach computed now.
#[test]
fn icmp_tests_without_ports_over_hundreds_of_grants() {
    let n = 4000;
    let dir = group_tailnet(n);
    let grants: Vec<String> = (0..n / 10)
        .map(|i| {
            format!(
                r#"{{"src": ["u{i}@example.com"], "dst": ["tag:web"], "ip": ["tcp:{}", "icmp:*"]}}"#,
                i + 1
            )
        })
        .collect();
    let tests: Vec<String> = (0..n / 10)
        .map(|i| {
            format!(r#"{{"src": "u{i}@example.com", "proto": "icmp", "accept": ["tag:web"]}}"#)
        })
        .collect();
    let policy = format!(
        r#"{{"tagOwners": {{"tag:web": []}}, "grants": [{}], "tests": [{}]}}"#,
        grants.join(",\n"),
        tests.join(",\n")
    );
    each_exits_0(&dir, &policy, &[&TEST]);
}

/// `aclc test` of the policy against the inventory in a [`group_tailnet`] folder.
const TEST: [&str; 4] = ["test", "policy.hujson", "--inventory", "inventory.json"];

/// Write `policy` as `policy.hujson` in `dir`, then run each of `runs` there: each exits 0
/// within the bounds.
fn each_exits_0(dir: &Path, policy: &str, runs: &[&[&str]]) {
    std::fs::write(dir.join("policy.hujson"), policy).unwrap();
    for args in runs {
        let out = assert_bounded(dir, args);
        assert_eq!(out.status, Some(0), "{args:?}: {out:?}");
    }
}

/// The users of a [`group_tailnet`] of `n` nodes, as the items of a JSON list.
fn all_users(n: usize) -> String {
    let users: Vec<String> = (0..n / 10)
        .map(|i| format!(r#""u{i}@example.com""#))
        .collect();
    users.join(",")
}

/// A scratch folder holding `inventory.json`: `n` nodes, the even ones owned by `n / 10`
/// users in turn (`u0@example.com` ..., five devices each), the odd ones tagged `tag:web`.
fn group_tailnet(n: usize) -> PathBuf {
    let dir = scratch();
    let users: Vec<String> = (0..n / 10)
        .map(|i| {
            format!(
                r#"{{"id": {}, "name": "u{i}", "email": "u{i}@example.com"}}"#,
                i + 1
            )
        })
        .collect();
    let nodes: Vec<String> = (0..n)
        .map(|i| {
            let owner = if i % 2 == 0 {
                format!(r#""user": "u{}@example.com", "tags": []"#, (i / 2) % (n / 10))
            } else {
                r#""user": null, "tags": ["tag:web"]"#.to_string()
            };
            format!(
                r#"{{"name": "n{i}", {owner}, "ipv4": "100.64.{}.{}", "ipv6": "fd7a:115c:a1e0::{i:x}"}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    let inventory = format!(
        r#"{{"users": [{}], "nodes": [{}], "tailnet": {{"name": "example.com"}}}}"#,
        users.join(","),
        nodes.join(",")
    );
    std::fs::write(dir.join("inventory.json"), inventory).unwrap();
    dir
}

/// 16 layers of 4 IP sets, each naming all 4 of the layer below: 4^16 paths.
#[test]
fn ipset_dag_16_by_4() {
    let mut sets = Vec::new();
    for j in 0..4 {
        sets.push(format!(r#""ipset:l0x{j}": ["10.0.{j}.0/24"]"#));
    }
    for layer in 1..16 {
        for j in 0..4 {
            let below: Vec<String> = (0..4)
                .map(|k| {
                    let op = if (j + k) % 3 == 2 { "remove" } else { "add" };
                    format!(r#""{op} ipset:l{}x{k}""#, layer - 1)
                })
                .collect();
            sets.push(format!(r#""ipset:l{layer}x{j}": [{}]"#, below.join(", ")));
        }
    }
    let policy = format!(
        r#"{{{TAG_OWNERS}, "ipsets": {{{}}},
            "acls": [{{"action": "accept", "src": ["ipset:l15x0", "ipset:l15x1"], "dst": ["ipset:l15x2:*", "ipset:l15x3:22"]}}]}}"#,
        sets.join(",\n")
    );
    every_command(&with_policy(&policy));
}

/// A minified policy (one line) with 10^5 unused groups: 10^5 warnings, columns far past
/// 65,535, rendered for a person and as JSON.
#[test]
fn hundred_thousand_diagnostics_on_one_line() {
    let mut policy = String::from(r#"{"groups":{"#);
    for i in 0..100_000 {
        if i > 0 {
            policy.push(',');
        }
        write!(policy, r#""group:g{i}":["alice@example.com"]"#).unwrap();
    }
    policy.push_str(r#"},"acls":[]}"#);
    let dir = with_policy(&policy);
    assert_bounded(&dir, &["check", "policy.hujson"]);
    assert_bounded(&dir, &["check", "policy.hujson", "--format", "json"]);
}

/// One rule whose sources are 10^5 hosts (distinct addresses) and whose destinations name
/// some of them again.
#[test]
fn a_rule_naming_a_hundred_thousand_hosts() {
    let mut hosts = Vec::with_capacity(100_000);
    let mut src = Vec::with_capacity(100_000);
    for i in 0u32..100_000 {
        hosts.push(format!(
            r#""h{i}": "10.{}.{}.{}""#,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
        src.push(format!(r#""h{i}""#));
    }
    let policy = format!(
        r#"{{{TAG_OWNERS}, "hosts": {{{}}},
            "acls": [{{"action": "accept", "src": [{}], "dst": ["*:*", "h0:22", "h99999:22"]}}]}}"#,
        hosts.join(",\n"),
        src.join(", ")
    );
    every_command(&with_policy(&policy));
}

/// 10^4 network tests that all fail: `test` reports each (exit 3), `check` and `compile`
/// refuse the policy (`check --inventory` renders 2 * 10^4 diagnostics).
#[test]
fn ten_thousand_failing_tests() {
    let test = r#"{"src": "alice@example.com", "accept": ["tag:db:5432", "100.64.1.1:443"]}"#;
    let tests = vec![test; 10_000].join(",\n");
    let policy = format!(
        r#"{{{TAG_OWNERS}, "acls": [{{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}}],
            "tests": [{tests}]}}"#
    );
    let dir = with_policy(&policy);
    let inventory = inventory();
    let out = assert_bounded(
        &dir,
        &[
            "test",
            "policy.hujson",
            "--inventory",
            inventory.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status, Some(3));
    every_command(&dir);
}

/// A policy of 17 MiB (the limit is 16): refused, without reading it all into trees.
#[test]
fn oversized_policy() {
    let mut policy = String::from("{\"acls\": [], \"hosts\": {\n");
    let mut i = 0;
    while policy.len() < 17 * 1024 * 1024 {
        writeln!(
            policy,
            "\"host{i}\": \"10.{}.{}.1\",",
            (i >> 8) & 255,
            i & 255
        )
        .unwrap();
        i += 1;
    }
    policy.push_str("\"last\": \"10.255.255.255\"}}\n");
    let dir = with_policy(&policy);
    // Oversized input is refused before parsing, as unreadable input is: exit 1, with the
    // sizes.
    let out = assert_bounded(&dir, &["check", "policy.hujson"]);
    assert_eq!(out.status, Some(1), "{}", out.stderr_head);
    let size = std::fs::metadata(dir.join("policy.hujson")).unwrap().len();
    assert!(
        out.stderr_head.contains(&format!(
            "policy.hujson is larger than the 16 MiB limit ({size} bytes"
        )),
        "{}",
        out.stderr_head
    );
    every_command(&dir);
}

/// `/dev/zero` never ends: the read must stop at the size limit (found by this suite: aclc
/// read the whole file before checking its size, so it grew until the machine ran out of
/// memory).
#[test]
fn dev_zero_as_policy() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let dir = scratch();
    let out = assert_bounded(&dir, &["check", "/dev/zero"]);
    assert_eq!(out.status, Some(1), "{}", out.stderr_head);
    assert!(
        out.stderr_head
            .contains("/dev/zero is larger than the 16 MiB limit (more than 16777216 bytes"),
        "{}",
        out.stderr_head
    );
    let inventory = inventory();
    let inventory = inventory.to_str().unwrap();
    for command in ["compile", "test"] {
        let out = assert_bounded(&dir, &[command, "/dev/zero", "--inventory", inventory]);
        assert_eq!(out.status, Some(1), "{}", out.stderr_head);
    }
    // The same endless stream on standard input.
    let out = assert_bounded_with(&dir, &["check", "-"], Some(Path::new("/dev/zero")));
    assert_eq!(out.status, Some(1), "{}", out.stderr_head);
}
