//! `aclc fmt -` against `hujson.Format`, byte for byte, on every vector of
//! `testdata/hujson/hujson_vectors.json` that hujson formats (including the inputs that are not
//! UTF-8, which only the CLI can format: it puts the bytes back). Known differences are listed
//! with why; the test fails on a new one and on a listed one that went away.

use std::io::Write as _;
use std::process::{Command, Stdio};

const DATA: &str = include_str!("../../testdata/hujson/hujson_vectors.json");

const DEPTH: &str = "aclc refuses to format past Limits::max_depth (128); hujsonfmt has no limit";
const KNOWN: &[(&str, &str)] = &[
    ("aclc-edge depth 129 arrays", DEPTH),
    ("aclc-edge depth 129 in grant app", DEPTH),
];

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

fn fmt(input: &[u8]) -> std::io::Result<(Option<i32>, Vec<u8>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aclc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
    let input = input.to_vec();
    // Written from another thread, so a large output cannot block the child on a full pipe.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    // A refused input may close stdin early: that write error is not the test's concern.
    let _ = writer.join();
    Ok((out.status.code(), out.stdout))
}

#[test]
fn aclc_fmt_matches_hujson_format() {
    let file: serde_json::Value = serde_json::from_str(DATA).unwrap();
    let mut differ = Vec::new();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let id = v["id"].as_str().unwrap();
        let want = match (v["format"].as_str(), v["format_hex"].as_str()) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(h)) => unhex(h).unwrap(),
            (None, None) => continue,
        };
        let input = if let Some(n) = v["in_nested_arrays"].as_u64() {
            let n = n as usize;
            ["[".repeat(n), "]".repeat(n)].concat().into_bytes()
        } else if let Some(s) = v["in"].as_str() {
            s.as_bytes().to_vec()
        } else {
            unhex(v["in_hex"].as_str().unwrap()).unwrap()
        };
        checked += 1;
        let (code, got) = fmt(&input).unwrap();
        if code != Some(0) || got != want {
            differ.push((id.to_owned(), code, got, want));
        }
    }
    assert!(checked > 250, "only {checked} vectors with a Format output");
    let mut report = String::new();
    for (id, code, got, want) in &differ {
        if !KNOWN.iter().any(|(k, _)| k == id) {
            report.push_str(&format!(
                "NEW {id}: exit {code:?}\n  hujson: {:?}\n  aclc:   {:?}\n",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(got)
            ));
        }
    }
    for (k, _) in KNOWN {
        if !differ.iter().any(|(id, ..)| id == k) {
            report.push_str(&format!("FIXED {k}: remove it from KNOWN\n"));
        }
    }
    assert!(report.is_empty(), "{report}");
}
