//! Hostile inputs at the command line (issue 9): a minified policy with thousands of
//! warnings, terminal escape sequences and bidi controls, endless or oversized inputs. Each
//! must end quickly with small, escaped output and the documented exit status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{aclc_in, examples, file, json, scratch, stderr, stdout};

/// What `jq -c` makes of a policy with `n` groups of which only the first is used.
fn minified_groups(n: usize) -> String {
    let groups: Vec<String> = (0..n)
        .map(|i| format!("\"group:g{i}\":[\"u{i}@example.com\"]"))
        .collect();
    format!(
        "{{\"groups\":{{{}}},\"acls\":[{{\"action\":\"accept\",\"src\":[\"group:g0\"],\"dst\":[\"*:*\"]}}]}}",
        groups.join(",")
    )
}

/// Run `aclc` in `dir` with `stdin` attached, killing it if it runs past a generous bound
/// (so a regression fails the test instead of hanging CI).
fn run_bounded(dir: &Path, args: &[&str], stdin: Stdio) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_aclc"))
        .args(args)
        .current_dir(dir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, args)
}

/// Wait for `child` (`aclc args`), killing it past the bound.
fn wait_bounded(mut child: std::process::Child, args: &[&str]) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("aclc {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_minified_policy_with_thousands_of_warnings_renders_small() {
    let (dir, _) = file("policy.json", &minified_groups(3000));
    let o = aclc_in(&dir, &["check", "policy.json"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.len() < 200_000, "{} bytes of stderr", err.len());
    assert!(!err.contains('\u{1b}'));
    assert_eq!(err.matches("aclc::unused_group").count(), 100);
    assert!(
        err.ends_with(
            "policy.json: … and 2899 more diagnostics not shown (--max-diagnostics 0 shows all)\n\
             policy.json: valid, 2999 warnings\n"
        ),
        "{}",
        &err[err.len() - 300..]
    );
    // Far past column 65,535, with the real column in the header.
    let o = aclc_in(
        &dir,
        &["check", "policy.json", "--max-diagnostics", "0"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("aclc::unused_group").count(), 2999);
    let text = std::fs::read_to_string(dir.join("policy.json")).unwrap();
    let column = text.find("\"group:g2999\"").unwrap() + 2;
    assert!(column > 65_535);
    assert!(
        err.contains(&format!("[policy.json:1:{column}]")),
        "no header for g2999"
    );
    assert!(err.len() < 3000 * 2000, "{} bytes of stderr", err.len());

    // JSON is for programs: every diagnostic, whatever the flag.
    let o = aclc_in(&dir, &["check", "policy.json", "--format", "json"], None);
    assert_eq!(json(&o)["diagnostics"].as_array().unwrap().len(), 2999);
}

#[test]
fn errors_are_shown_before_warnings_when_capped() {
    let mut policy = minified_groups(50);
    policy.insert_str(policy.len() - 1, ",\"tagOwners\":{\"nottag\":[]}");
    let (dir, _) = file("policy.json", &policy);
    let o = aclc_in(
        &dir,
        &["check", "policy.json", "--max-diagnostics", "3"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    // The error comes last in the file but is shown, with the first two warnings.
    assert!(err.contains("tags must start with 'tag:'"), "{err}");
    assert_eq!(err.matches("aclc::unused_group").count(), 2, "{err}");
    // 49 unused groups (the invalid tag is not reported unused: the `*:*` rule reaches it).
    assert!(err.contains("… and 47 more diagnostics not shown"), "{err}");
    assert!(
        err.ends_with("policy.json: 1 error, 49 warnings\n"),
        "{err}"
    );
}

#[test]
fn terminal_controls_are_shown_escaped() {
    // An OSC sequence (set the window title) in a group name, a CSI colour and a bell in a
    // comment, in a file whose name holds an escape too.
    let policy = "{\n  // \u{1b}[31mred\u{1b}[0m \u{7}\n  \"groups\": {\"group:\\u001b]0;pwned\\u0007x\": [\"alice@example.com\"]},\n  \"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]\n}\n";
    let (dir, _) = file("p\u{1b}[2J.hujson", policy);
    let o = aclc_in(&dir, &["check", "p\u{1b}[2J.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(!err.contains('\u{7}'), "{err:?}");
    // The snippet and the file name are escaped the same way.
    assert!(err.contains("// \\u{1b}[31mred\\u{1b}[0m \\u{7}"), "{err}");
    assert!(err.contains("[p\\u{1b}[2J.hujson:3:"), "{err}");
    assert!(
        err.ends_with("p\\u{1b}[2J.hujson: valid, 1 warning\n"),
        "{err}"
    );

    // A raw escape sequence inside a string is a syntax error, shown escaped too.
    let (dir, _) = file(
        "policy.hujson",
        "{\"groups\": {\"group:a\u{1b}]0;x\u{7}\": []}}\n",
    );
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(
        err.contains("invalid literal: \"group:a\\u001b]0;x\\u0007\"")
            && err.contains("control character U+001B"),
        "{err}"
    );
    assert!(
        err.contains("{\"groups\": {\"group:a\\u{1b}]0;x\\u{7}\": []}}"),
        "{err}"
    );
}

#[test]
fn bidi_controls_get_a_warning() {
    let policy = "{\n  \"groups\": {\"group:admins\u{202E}\": [\"alice@example.com\"]},\n  \"acls\": [{\"action\": \"accept\", \"src\": [\"group:admins\u{202E}\"], \"dst\": [\"*:*\"]}]\n}\n";
    let (dir, _) = file("policy.hujson", policy);
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("aclc::bidi_control"), "{err}");
    assert!(err.contains("Trojan Source"), "{err}");
    assert!(!err.contains('\u{202E}'), "shown escaped: {err}");
    assert!(err.contains("group:admins\\u{202e}"), "{err}");
    assert!(err.ends_with("policy.hujson: valid, 2 warnings\n"), "{err}");
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    let out = json(&o);
    let codes: Vec<&str> = out["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["aclc::bidi_control", "aclc::bidi_control"]);
    assert_eq!(out["diagnostics"][0]["line"], 2);
    assert_eq!(out["diagnostics"][0]["column"], 27);
}

fn dev_zero() -> Option<std::fs::File> {
    std::fs::File::open("/dev/zero").ok()
}

#[test]
fn an_endless_policy_is_refused_quickly() {
    if dev_zero().is_none() {
        return;
    }
    let dir = scratch();
    let o = run_bounded(&dir, &["check", "/dev/zero"], Stdio::null());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: /dev/zero is larger than the 16 MiB limit (more than 16777216 bytes; \
         --max-policy-bytes raises the limit)\n"
    );
    // Standard input that never ends.
    let o = run_bounded(
        &dir,
        &[
            "check",
            "-",
            "--max-policy-bytes",
            "1MiB",
            "--format",
            "json",
        ],
        Stdio::from(dev_zero().unwrap()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("<stdin> is larger than the 1 MiB limit"),
        "{}",
        stderr(&o)
    );
    assert_eq!(json(&o)["valid"], false);
}

#[test]
fn an_endless_inventory_is_refused_quickly() {
    if dev_zero().is_none() {
        return;
    }
    let policy = examples().join("policy.hujson");
    let policy = policy.to_str().unwrap();
    let dir = scratch();
    for command in ["check", "compile", "test"] {
        let mut args = vec![command, policy, "--inventory", "/dev/zero"];
        args.extend(["--max-inventory-bytes", "4MiB"]);
        let o = run_bounded(&dir, &args, Stdio::null());
        assert_eq!(o.status.code(), Some(1), "{command}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(
                "/dev/zero is larger than the 4 MiB limit (more than 4194304 bytes; \
                 --max-inventory-bytes raises the limit)"
            ),
            "{command}: {}",
            stderr(&o)
        );
    }
    // From an endless standard input.
    let o = run_bounded(
        &dir,
        &[
            "compile",
            policy,
            "--inventory",
            "-",
            "--max-inventory-bytes",
            "64KiB",
        ],
        Stdio::from(dev_zero().unwrap()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("<stdin> is larger than the 64 KiB limit"));
}

#[test]
fn an_oversized_file_is_refused_with_its_size() {
    let (dir, _) = file("policy.hujson", &minified_groups(10));
    let o = aclc_in(
        &dir,
        &["check", "policy.hujson", "--max-policy-bytes", "100"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let size = std::fs::metadata(dir.join("policy.hujson")).unwrap().len();
    assert_eq!(
        stderr(&o),
        format!(
            "error: policy.hujson is larger than the 100 bytes limit ({size} bytes; \
             --max-policy-bytes raises the limit)\n"
        )
    );
    let o = aclc_in(
        &dir,
        &["check", "policy.hujson", "--max-policy-bytes", "lots"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn the_inventory_can_come_from_standard_input() {
    let examples = examples();
    let inventory = std::fs::read_to_string(examples.join("inventory.json")).unwrap();
    let from_file = aclc_in(
        &examples,
        &["compile", "policy.hujson", "--inventory", "inventory.json"],
        None,
    );
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
    let from_stdin = aclc_in(
        &examples,
        &["compile", "policy.hujson", "--inventory", "-"],
        Some(&inventory),
    );
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), stdout(&from_file));
    for command in ["check", "test"] {
        let o = aclc_in(
            &examples,
            &[command, "policy.hujson", "--inventory", "-"],
            Some(&inventory),
        );
        assert_eq!(o.status.code(), Some(0), "{command}: {}", stderr(&o));
    }
    // Standard input cannot be both.
    for command in ["check", "compile", "test"] {
        let o = aclc_in(
            &examples,
            &[command, "-", "--inventory", "-"],
            Some(&inventory),
        );
        assert_eq!(o.status.code(), Some(1), "{command}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("standard input (`-`) can be read only once"),
            "{command}: {}",
            stderr(&o)
        );
    }
}

/// Output to a full disk (`/dev/full`) is an error (exit 1, one message), never a panic:
/// `println!` panicked (exit 101) for the JSON and SARIF documents; `fmt` lost the text and
/// exited 0. A closed pipe ends `fmt` quietly (the reader took what it wanted).
#[test]
fn output_that_cannot_be_written_is_an_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let policy = examples().join("policy.hujson");
    let policy = policy.to_str().unwrap();
    for args in [
        &["check", "--format", "json", policy][..],
        &["check", "--format", "sarif", policy],
        &["fmt", policy],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_aclc"))
            .args(args)
            .stdout(Stdio::from(full.try_clone().unwrap()))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "error: cannot write the output: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}

/// A reader that closes the pipe early (`aclc schema | head -1`) ends the command quietly,
/// with the exit status of its verdict, as for the commands that stream their output:
/// `schema` said "cannot write the schema: Broken pipe" and exited 1, and `check`'s JSON,
/// SARIF and GitHub output exited 1 with "cannot write the output". (The read end is closed
/// before the program starts writing.)
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let policy = examples().join("policy.hujson");
    let policy = policy.to_str().unwrap();
    let invalid = examples().join("invalid.hujson");
    let invalid = invalid.to_str().unwrap();
    for (args, status) in [
        (&["schema", "policy"][..], 0),
        (&["schema", "inventory"], 0),
        (&["check", "--format", "json", policy], 0),
        (&["check", "--format", "sarif", policy], 0),
        (&["check", "--format", "github", invalid], 2),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aclc"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(status), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// [`run_bounded`] with standard output in a file (`out.txt`, returned): a pipe nobody reads
/// until the end would stop a large output.
fn run_bounded_to_file(dir: &Path, args: &[&str]) -> (Output, String) {
    let path = dir.join("out.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_aclc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&path).unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child, args);
    (output, std::fs::read_to_string(&path).unwrap())
}

/// `diff` stays linear where a hostile sweep found it quadratic: a group of 100,000 members
/// losing every other one (each member was looked up in the other list: 10 s at 80,000 in a
/// release build), and, with an inventory, one grant from 5,000 addresses no node has on
/// 5,000 ports losing every other port (each address compared as text per port: 4.4 s and
/// 300 MB in a release build, 19 MB of output with one change per address).
#[test]
fn diff_of_large_lists_is_bounded() {
    let dir = scratch();
    let members: Vec<String> = (0..100_000)
        .map(|i| format!("\"u{i}@example.com\""))
        .collect();
    let kept: Vec<String> = members.iter().skip(1).step_by(2).cloned().collect();
    let group = |m: &[String]| {
        format!(
            r#"{{"groups": {{"group:g": [{}]}}, "grants": [{{"src": ["group:g"], "dst": ["*"], "ip": ["tcp:443"]}}]}}"#,
            m.join(",")
        )
    };
    write(&dir, "old.hujson", &group(&members));
    write(&dir, "new.hujson", &group(&kept));
    let (o, out) = run_bounded_to_file(&dir, &["diff", "old.hujson", "new.hujson"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        out.contains(" -u0@example.com "),
        "{}",
        &out[..out.len().min(400)]
    );

    let hosts: Vec<String> = (0..5000)
        .map(|i| format!("\"h{i}\": \"100.65.{}.{}\"", i / 256, i % 256))
        .collect();
    let names: Vec<String> = (0..5000).map(|i| format!("\"h{i}\"")).collect();
    let ports = |step: usize| -> Vec<String> {
        (1..=5000)
            .step_by(step)
            .map(|p| format!("\"tcp:{p}\""))
            .collect()
    };
    let grant = |ports: &[String]| {
        format!(
            r#"{{"hosts": {{{}}}, "grants": [{{"src": [{}], "dst": ["tag:web"], "ip": [{}]}}],
                "tagOwners": {{"tag:web": []}}}}"#,
            hosts.join(","),
            names.join(","),
            ports.join(",")
        )
    };
    write(&dir, "ip_old.hujson", &grant(&ports(1)));
    write(&dir, "ip_new.hujson", &grant(&ports(2)));
    write(
        &dir,
        "inventory.json",
        r#"{"users": [], "nodes": [{"name": "web-1", "user": null, "tags": ["tag:web"],
            "ipv4": "100.64.1.1", "ipv6": "fd7a:115c:a1e0::101"}], "tailnet": {"name": "example.com"}}"#,
    );
    let (o, out) = run_bounded_to_file(
        &dir,
        &[
            "diff",
            "ip_old.hujson",
            "ip_new.hujson",
            "--inventory",
            "inventory.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        out.starts_with("access changed: 0 gained, 1 lost\n"),
        "{}",
        &out[..out.len().min(400)]
    );
    assert!(
        out.contains("sources: 100.65.0.0-100.65.19.135\n"),
        "{}",
        &out[..out.len().min(400)]
    );
}

/// An exit node's filter with 5,000 single internet addresses beside 100 `*` rules: keying
/// each `*` entry by every piece of the internet would be 100 x 10,000 keys (6.5 s); past
/// the budget the routes are keyed whole, and the change (one more `*` rule) is still
/// reported, on the exit node's internet as on the nodes.
#[test]
fn diff_of_many_routed_addresses_is_bounded() {
    let dir = scratch();
    let dsts: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                "\"8.{}.{}.{}:{}\"",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                80 + i % 7
            )
        })
        .collect();
    let mut rules: Vec<String> = dsts
        .chunks(50)
        .map(|d| {
            format!(
                r#"{{"action": "accept", "src": ["a@example.com"], "dst": [{}]}}"#,
                d.join(",")
            )
        })
        .collect();
    rules.extend((0..100).map(|j| {
        format!(
            r#"{{"action": "accept", "src": ["a@example.com"], "dst": ["*:{}"]}}"#,
            1000 + j
        )
    }));
    let policy = |rules: &[String]| {
        format!(
            r#"{{"tagOwners": {{"tag:exit": []}}, "acls": [{}]}}"#,
            rules.join(",")
        )
    };
    write(&dir, "old.hujson", &policy(&rules));
    rules.push(r#"{"action": "accept", "src": ["a@example.com"], "dst": ["*:22"]}"#.into());
    write(&dir, "new.hujson", &policy(&rules));
    write(
        &dir,
        "inventory.json",
        r#"{"users": [{"id": 1, "name": "a", "email": "a@example.com"}],
            "nodes": [
              {"name": "laptop", "user": "a@example.com", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
              {"name": "exit", "user": null, "tags": ["tag:exit"], "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
               "routable_ips": ["0.0.0.0/0", "::/0"], "approved_routes": ["0.0.0.0/0", "::/0"]}]}"#,
    );
    let (o, out) = run_bounded_to_file(
        &dir,
        &[
            "diff",
            "old.hujson",
            "new.hujson",
            "--inventory",
            "inventory.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let gained = doc["network"]["gained"].as_array().unwrap();
    assert_eq!(gained.len(), 1, "{doc}");
    assert_eq!(gained[0]["ports"], "22");
    let dst = gained[0]["dst"]["names"].to_string();
    assert!(
        dst.contains("0.0.0.0/0 via exit") && dst.contains("laptop"),
        "{dst}"
    );
}
