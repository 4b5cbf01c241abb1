//! Drives `aclc fmt`: standard input to standard output, `-w`, `--check` and `--diff` with
//! their exit statuses, syntax errors, and every conformance policy formatted idempotently
//! without changing its value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use aclc_testkit::corpus;
use aclc_testkit::hujson::strip;
use common::{aclc_in, file, scratch, stderr, stdout};
use serde_json::Value;

const UNFORMATTED: &str = "{\"acls\":[{\"action\":\"accept\",\"src\":[\"*\"],\"dst\":[\"*:*\"]},\n],\n// comment\n\"tagOwners\":{\"tag:web\":[]}}";

/// What hujson's Format makes of [`UNFORMATTED`].
const FORMATTED: &str = "{\n\t\"acls\": [\n\t\t{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]},\n\t],\n\t// comment\n\t\"tagOwners\": {\"tag:web\": []},\n}\n";

fn fmt_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["fmt"];
    all.extend_from_slice(args);
    aclc_in(dir, &all, stdin)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Sets a file's modification time far in the past, so a rewrite shows.
fn age(path: &Path) -> SystemTime {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    old
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn standard_input_is_formatted_to_standard_output() {
    for args in [&[][..], &["-"][..]] {
        let o = fmt_in(&scratch(), args, Some(UNFORMATTED));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), FORMATTED);
        assert_eq!(stderr(&o), "");
    }
}

#[test]
fn one_file_is_printed_and_left_alone() {
    let (dir, path) = file("policy.hujson", UNFORMATTED);
    let o = fmt_in(&dir, &["policy.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), FORMATTED);
    assert_eq!(read(&path), UNFORMATTED);
}

#[test]
fn write_rewrites_only_the_files_that_change() {
    let (dir, changed) = file("a.hujson", UNFORMATTED);
    let same = dir.join("b.hujson");
    std::fs::write(&same, FORMATTED).unwrap();
    let crlf = dir.join("c.hujson");
    std::fs::write(&crlf, FORMATTED.replace('\n', "\r\n")).unwrap();
    let old = age(&same);
    age(&changed);
    let o = fmt_in(&dir, &["-w", "a.hujson", "b.hujson", "c.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(read(&changed), FORMATTED);
    assert_ne!(modified(&changed), old);
    assert_eq!(read(&same), FORMATTED);
    assert_eq!(modified(&same), old, "a formatted file is not rewritten");
    assert_eq!(read(&crlf), FORMATTED);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
}

#[cfg(unix)]
#[test]
fn write_keeps_permissions_and_follows_symbolic_links() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, target) = file("real.hujson", UNFORMATTED);
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("real.hujson", dir.join("link.hujson")).unwrap();
    let o = fmt_in(&dir, &["-w", "link.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&target), FORMATTED);
    let meta = std::fs::symlink_metadata(dir.join("link.hujson")).unwrap();
    assert!(meta.file_type().is_symlink());
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn check_exits_4_and_lists_the_unformatted_files() {
    let (dir, changed) = file("a.hujson", UNFORMATTED);
    std::fs::write(dir.join("b.hujson"), FORMATTED).unwrap();
    let o = fmt_in(&dir, &["--check", "a.hujson", "b.hujson"], None);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "a.hujson\n");
    assert_eq!(read(&changed), UNFORMATTED);

    let o = fmt_in(&dir, &["--check", "b.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!((stdout(&o), stderr(&o)), (String::new(), String::new()));

    let o = fmt_in(&dir, &["--check"], Some(UNFORMATTED));
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stderr(&o), "<stdin>\n");
    let o = fmt_in(&dir, &["--check", "-"], Some(FORMATTED));
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn diff_prints_a_unified_diff_of_the_changes() {
    let (dir, path) = file("p.hujson", "{\"a\":1,\n\"bbb\":2}");
    let o = fmt_in(&dir, &["--diff", "p.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "--- p.hujson.orig\n+++ p.hujson\n@@ -1,2 +1,4 @@\n-{\"a\":1,\n-\"bbb\":2}\n\\ No newline at end of file\n+{\n+\t\"a\":   1,\n+\t\"bbb\": 2\n+}\n"
    );
    assert_eq!(read(&path), "{\"a\":1,\n\"bbb\":2}");

    // A formatted file has no diff; with --check, the status says whether there was one.
    let o = fmt_in(&dir, &["--diff", "-"], Some(FORMATTED));
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
    let o = fmt_in(&dir, &["--diff", "--check", "p.hujson"], None);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stdout(&o).starts_with("--- p.hujson.orig\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(stderr(&o), "p.hujson\n");
}

#[test]
fn diff_applies_back_with_context_around_each_change() {
    let mut lines: Vec<String> = (0..40).map(|i| format!("\t\"k{i:02}\": {i},")).collect();
    let formatted = format!("{{\n{}\n}}\n", lines.join("\n"));
    lines[5] = "\t\"k05\":    5,".into();
    lines[30] = "  \"k30\": 30,".into();
    let text = format!("{{\n{}\n}}\n", lines.join("\n"));
    let o = fmt_in(&scratch(), &["--diff"], Some(&text));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let diff = stdout(&o);
    assert!(
        diff.starts_with("--- <stdin>.orig\n+++ <stdin>\n@@ -4,7 +4,7 @@\n"),
        "{diff}"
    );
    assert!(diff.contains("\n@@ -29,7 +29,7 @@\n"), "{diff}");
    assert!(
        diff.contains("\n-\t\"k05\":    5,\n+\t\"k05\": 5,\n"),
        "{diff}"
    );
    assert!(
        diff.contains("\n-  \"k30\": 30,\n+\t\"k30\": 30,\n"),
        "{diff}"
    );
    assert_eq!(
        diff.lines().filter(|l| l.starts_with(['-', '+'])).count(),
        6
    );
    assert_eq!(
        fmt_in(&scratch(), &[], Some(&text)).stdout,
        formatted.as_bytes()
    );
}

#[test]
fn syntax_errors_are_rendered_and_exit_2() {
    let (dir, path) = file("bad.hujson", "{\"a\" 1}\n");
    std::fs::write(dir.join("good.hujson"), UNFORMATTED).unwrap();
    let o = fmt_in(&dir, &["-w", "bad.hujson", "good.hujson"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("aclc::syntax"), "{err}");
    assert!(err.contains("bad.hujson:1:6"), "{err}");
    assert!(err.contains("expected `:`"), "{err}");
    assert_eq!(
        read(&path),
        "{\"a\" 1}\n",
        "a file with an error is not touched"
    );
    assert_eq!(read(&dir.join("good.hujson")), FORMATTED, "the others are");

    let o = fmt_in(&dir, &[], Some("{} // no newline"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("parsing comment: unexpected EOF"));
    assert_eq!(stdout(&o), "");
    let o = fmt_in(&dir, &["--check", "-"], Some("\u{feff}{}"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("aclc::byte_order_mark"));
}

/// Bytes that are not UTF-8 inside a string: `check` reads them as U+FFFD (as Tailscale
/// does) with a warning, and `fmt` keeps each byte where it was, as `hujsonfmt` keeps it
/// (genuine U+FFFD characters beside them stay characters).
#[test]
fn bytes_that_are_not_utf8_in_a_string_are_kept_by_fmt() {
    let dir = scratch();
    let path = dir.join("latin1.hujson");
    let bytes = b"{\"groups\": {\"group:caf\xE9\xEF\xBF\xBD\xFF\": [\"a@example.com\"]}}\n";
    std::fs::write(&path, bytes).unwrap();
    let o = fmt_in(&dir, &["-w", "latin1.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want = b"{\"groups\": {\"group:caf\xE9\xEF\xBF\xBD\xFF\": [\"a@example.com\"]}}\n";
    assert_eq!(std::fs::read(&path).unwrap(), want);
    let o = fmt_in(&dir, &["--check", "latin1.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = aclc_in(&dir, &["check", "latin1.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("aclc::invalid_utf8"), "{}", stderr(&o));
    // Reformatted around the bytes, which stay.
    std::fs::write(&path, b"{\"a\":  \"\xE9\",\n\"b\":[\"\xFF\" ,1]}").unwrap();
    let o = fmt_in(&dir, &["latin1.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // (`hujsonfmt`'s own output for the same bytes.)
    assert_eq!(
        o.stdout,
        b"{\n\t\"a\": \"\xE9\",\n\t\"b\": [\"\xFF\", 1]\n}\n"
    );
    // Outside a string: refused, and the file left as it is.
    std::fs::write(&path, b"{\"a\": 1} // caf\xE9\n").unwrap();
    let o = fmt_in(&dir, &["-w", "latin1.hujson"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid UTF-8 in comment"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\": 1} // caf\xE9\n");
}

#[test]
fn a_policy_that_does_not_validate_is_formatted() {
    let o = fmt_in(
        &scratch(),
        &[],
        Some("{\"acls\": [], \"acls\": 5, \"bogus\": {\"x\":1,},}"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"acls\": [], \"acls\": 5, \"bogus\": {\"x\": 1}}\n"
    );
}

#[test]
fn unreadable_input_and_usage_errors_exit_1() {
    let dir = scratch();
    let o = fmt_in(&dir, &["missing.hujson"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read missing.hujson"),
        "{}",
        stderr(&o)
    );
    let o = fmt_in(&dir, &["--max-policy-bytes", "10"], Some(UNFORMATTED));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--max-policy-bytes"), "{}", stderr(&o));
    std::fs::write(dir.join("a.hujson"), FORMATTED).unwrap();
    std::fs::write(dir.join("b.hujson"), FORMATTED).unwrap();
    for args in [
        &["-w"][..],
        &["-w", "-"][..],
        &["-", "-", "--check"][..],
        &["a.hujson", "b.hujson"][..],
        &["-w", "--check", "a.hujson"][..],
        &["-w", "--diff", "a.hujson"][..],
        &["--bogus"][..],
    ] {
        let o = fmt_in(&dir, args, Some(FORMATTED));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(read(&dir.join("a.hujson")), FORMATTED);
}

/// Every conformance policy: `fmt -w` keeps its value, and `fmt --check` then finds nothing to
/// do (formatting is idempotent). Two runs of the binary over all files at once.
#[test]
fn every_conformance_policy_formats_idempotently_keeping_its_value() {
    let dir = scratch();
    let mut expected: Vec<(String, Value)> = Vec::new();
    let mut refused = 0;
    for case in corpus::all_cases() {
        let text = corpus::policy_text(&case);
        let name = format!("{}-{}.hujson", corpus::category(&case), corpus::id(&case));
        std::fs::write(dir.join(&name), text).unwrap();
        match serde_json::from_str::<Value>(&strip(text)) {
            Ok(value) => expected.push((name, value)),
            // A few captures are Tailscale refusing a malformed upload.
            Err(_) => refused += 1,
        }
    }
    assert!(expected.len() > 600, "{}", expected.len());
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut args = vec!["-w"];
    args.extend(&names);
    let o = fmt_in(&dir, &args, None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (name, value) in &expected {
        let formatted = read(&dir.join(name));
        let after: Value = serde_json::from_str(&strip(&formatted)).unwrap();
        assert_eq!(&after, value, "{name}");
    }
    args[0] = "--check";
    let o = fmt_in(&dir, &args, None);
    assert_eq!(o.status.code(), Some(0), "not idempotent: {}", stderr(&o));
    assert!(refused < 20, "{refused} policies do not parse");
}
