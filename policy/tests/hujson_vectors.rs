//! Golden corpus: every input of tailscale/hujson's own tests, plus edge cases, with what the Go
//! library does for each (run, not transcribed: see `testdata/hujson/hujson_vectors.json`'s
//! `source`). Each vector is checked for
//!
//! - acceptance: aclc (bytes decoded as `aclc check` decodes them, then the HuJSON parser)
//!   accepts exactly what `hujson.Parse` accepts;
//! - the value: for accepted input, the decoded tree equals what `hujson.Standardize` then Go's
//!   `encoding/json` decoder reads (strings after U+FFFD replacement, numbers as written,
//!   member order and duplicates kept);
//! - the error: for refused input, aclc's first error has hujson's message and line/column;
//! - the format: `hujson::format` prints what `hujson.Format` prints (valid UTF-8 inputs).
//!
//! Known, deliberate divergences are listed in `KNOWN` with the reason; the test fails when a
//! vector outside the list disagrees, and when a listed one agrees (so the list only shrinks).
//! `HUJSON_VECTORS_VERBOSE=1` prints every disagreement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aclc_policy::hujson::{self, Value, ValueKind};
use aclc_policy::{source_from_bytes, Diagnostic, Limits, Source};

const DATA: &str = include_str!("../../testdata/hujson/hujson_vectors.json");

const DUPLICATE_KEYS: &str =
    "aclc refuses a repeated key by design (ARCHITECTURE.md: duplicate keys \
    are an error); hujson keeps both members and encoding/json keeps the last";
const DEPTH: &str =
    "Limits::max_depth is 128; hujson has no depth limit (encoding/json's is 10000)";
const POSITION_STRING: &str =
    "aclc points at the offending byte or escape (or the opening quote of a \
    string left open); hujson at the opening quote of the literal (or at the end of input)";
const POSITION_COMMENT: &str =
    "aclc points at the first bad byte of a comment; hujson at the comment's `/`";
const MESSAGE_CONTROL_ESCAPED: &str = "aclc escapes control characters in the quoted literal so \
    the message stays on one line (hujson/tailscale.rs invalid_literal)";
const MESSAGE_UTF8_AFTER_VALUE: &str = "a bad byte after a value: aclc's own words (lib.rs \
    source_from_bytes), hujson's `invalid character '\\xff' after object value ...`";
const MESSAGE_COMMENT_EOF_VS_UTF8: &str =
    "a comment cut inside a UTF-8 sequence at the end of input: hujson \
    looks for the comment's end first (`parsing comment: unexpected EOF`), aclc for UTF-8 first";

/// (vector id, aspect, why): where aclc is known to differ. Generated from a run at
/// 7f2046c; see /tmp/s58/hujson/FINDINGS.md.
const KNOWN: &[(&str, Aspect, &str)] = &[
    ("aclc-edge U escape", Aspect::Position, POSITION_STRING),
    (
        "aclc-edge bad hex u escape",
        Aspect::Position,
        POSITION_STRING,
    ),
    ("aclc-edge depth 1000 arrays", Aspect::FalseReject, DEPTH),
    ("aclc-edge depth 10000 arrays", Aspect::FalseReject, DEPTH),
    ("aclc-edge depth 10001 arrays", Aspect::FalseReject, DEPTH),
    ("aclc-edge depth 129 arrays", Aspect::FalseReject, DEPTH),
    ("aclc-edge depth 129 arrays", Aspect::Format, DEPTH),
    (
        "aclc-edge depth 129 in grant app",
        Aspect::FalseReject,
        DEPTH,
    ),
    ("aclc-edge depth 129 in grant app", Aspect::Format, DEPTH),
    (
        "aclc-edge duplicate key",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "aclc-edge duplicate key after escape decoding",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "aclc-edge duplicate key nested",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "aclc-edge duplicate top-level policy key",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "aclc-edge escaped real newline",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge escaped real newline",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge high surrogate then bad escape",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge high surrogate then short u escape",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge invalid utf8 between tokens",
        Aspect::Message,
        MESSAGE_UTF8_AFTER_VALUE,
    ),
    (
        "aclc-edge invalid utf8 in block comment",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "aclc-edge invalid utf8 in line comment",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "aclc-edge nul raw in string",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge nul raw in string",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge raw 0x1f in string",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge raw 0x1f in string",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge raw CR in string",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge raw newline in string",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge raw tab in string",
        Aspect::Message,
        MESSAGE_CONTROL_ESCAPED,
    ),
    (
        "aclc-edge raw tab in string",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge short u escape",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge single quote escape",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge unterminated string",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "aclc-edge unterminated string ending in backslash",
        Aspect::Position,
        POSITION_STRING,
    ),
    ("aclc-edge x escape", Aspect::Position, POSITION_STRING),
    (
        "format_test.go testdataFormat[10]",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "format_test.go testdataFormat[11]",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "format_test.go testdataFormat[38]",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "json_test.go testdata[4]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "json_test.go testdata[7]",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "json_test.go testdata[8]",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "patch_test.go testdataPatch[12].patch",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "patch_test.go testdataPatch[45].in",
        Aspect::FalseReject,
        DUPLICATE_KEYS,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[10]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[10]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[11]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[11]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[22]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[23]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[23]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[24]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[24]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[25]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[25]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[29]",
        Aspect::Position,
        POSITION_STRING,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[8]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[9]",
        Aspect::Message,
        MESSAGE_COMMENT_EOF_VS_UTF8,
    ),
    (
        "standardizer_test.go@7247dd03 standardizerTestdata[9]",
        Aspect::Position,
        POSITION_COMMENT,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Aspect {
    /// aclc refuses what hujson accepts.
    FalseReject,
    /// aclc accepts what hujson refuses.
    FalseAccept,
    /// Both accept, the decoded values differ.
    Value,
    /// Both refuse, the message differs.
    Message,
    /// Both refuse, the line/column differ.
    Position,
    /// Both accept, the formatted text differs.
    Format,
}

struct Outcome {
    /// The first error, if any: message, line, column (hujson's byte columns).
    error: Option<(String, usize, usize)>,
    warned: bool,
    canon: Option<String>,
    format: Option<String>,
}

fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, 1 + at - line_start)
}

fn first_error(source: &Source, diagnostics: &[Diagnostic]) -> Option<(String, usize, usize)> {
    let first = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .min_by_key(|d| d.span.start)?;
    let (line, column) = line_column(source.text(), first.span.start as usize);
    Some((first.message.clone(), line, column))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// The same canonical text the Go oracle writes.
fn canon(value: &Value, out: &mut String) {
    match &value.kind {
        ValueKind::Null => out.push_str("null"),
        ValueKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ValueKind::Number(n) => {
            out.push_str("n:");
            out.push_str(&n.0);
        }
        ValueKind::String(s) => {
            out.push_str("s:");
            out.push_str(&hex(s.as_bytes()));
        }
        ValueKind::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canon(item, out);
            }
            out.push(']');
        }
        ValueKind::Object(members) => {
            out.push('{');
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&hex(member.key.name.as_bytes()));
                out.push(':');
                canon(&member.value, out);
            }
            out.push('}');
        }
    }
}

fn run(bytes: &[u8]) -> Outcome {
    let limits = Limits::default();
    let (source, decoding) = source_from_bytes("vector", bytes, &limits);
    let warned = decoding.iter().any(|d| !d.is_error());
    if let Some(error) = first_error(&source, &decoding) {
        let format = hujson::format(&source, &limits).ok();
        return Outcome {
            error: Some(error),
            warned,
            canon: None,
            format,
        };
    }
    let (document, diagnostics) = hujson::parse(&source, &limits);
    let warned = warned || diagnostics.iter().any(|d| !d.is_error());
    let error = first_error(&source, &diagnostics);
    let canon = document.as_ref().map(|d| {
        let mut s = String::new();
        canon(&d.root, &mut s);
        s
    });
    Outcome {
        error,
        warned,
        canon,
        format: hujson::format(&source, &limits).ok(),
    }
}

#[test]
fn hujson_golden_vectors() {
    let file: serde_json::Value = serde_json::from_str(DATA).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 406);
    let verbose = std::env::var_os("HUJSON_VECTORS_VERBOSE").is_some();
    let mut found: BTreeMap<(String, Aspect), String> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        *counts.entry(id.split(' ').next().unwrap()).or_default() += 1;
        let (bytes, utf8) = if let Some(n) = v["in_nested_arrays"].as_u64() {
            let n = n as usize;
            (["[".repeat(n), "]".repeat(n)].concat().into_bytes(), true)
        } else if let Some(s) = v["in"].as_str() {
            (s.as_bytes().to_vec(), true)
        } else {
            (unhex(v["in_hex"].as_str().unwrap()).unwrap(), false)
        };
        let want_ok = v["ok"].as_bool().unwrap();
        let got = run(&bytes);
        let mut note = |aspect: Aspect, detail: String| {
            found.insert((id.to_owned(), aspect), detail);
        };
        match (want_ok, &got.error) {
            (true, Some((message, line, column))) => note(
                Aspect::FalseReject,
                format!("aclc: {line}:{column}: {message}"),
            ),
            (false, None) => note(
                Aspect::FalseAccept,
                format!(
                    "hujson: {}:{}: {}; aclc accepts{}",
                    v["line"],
                    v["column"],
                    v["error"].as_str().unwrap(),
                    if got.warned {
                        " with a warning"
                    } else {
                        " silently"
                    }
                ),
            ),
            (false, Some((message, line, column))) => {
                let want_message = v["error"].as_str().unwrap();
                if message != want_message {
                    note(
                        Aspect::Message,
                        format!("hujson: {want_message:?} aclc: {message:?}"),
                    );
                }
                let want = (
                    v["line"].as_u64().unwrap() as usize,
                    v["column"].as_u64().unwrap() as usize,
                );
                if (*line, *column) != want {
                    note(
                        Aspect::Position,
                        format!("hujson: {}:{} aclc: {line}:{column}", want.0, want.1),
                    );
                }
            }
            (true, None) => {
                let want_canon = match v["canon"].as_str() {
                    Some(c) => c.to_owned(),
                    None => {
                        let n = v["in_nested_arrays"].as_u64().unwrap() as usize;
                        ["[".repeat(n), "]".repeat(n)].concat()
                    }
                };
                if got.canon.as_deref() != Some(want_canon.as_str()) {
                    note(
                        Aspect::Value,
                        format!("hujson: {want_canon} aclc: {:?}", got.canon),
                    );
                }
            }
        }
        // The formatter does not validate (duplicate keys format too): compared whenever
        // hujson formats, for text input (`aclc fmt` restores non-UTF-8 bytes itself).
        if let (true, Some(want_format)) = (utf8, v["format"].as_str()) {
            if got.format.as_deref() != Some(want_format) {
                note(
                    Aspect::Format,
                    format!("hujson: {want_format:?} aclc: {:?}", got.format),
                );
            }
        }
    }
    let known: BTreeMap<(String, Aspect), &str> = KNOWN
        .iter()
        .map(|&(id, aspect, why)| ((id.to_owned(), aspect), why))
        .collect();
    let mut report = String::new();
    for ((id, aspect), detail) in &found {
        if verbose || !known.contains_key(&(id.clone(), *aspect)) {
            let tag = if known.contains_key(&(id.clone(), *aspect)) {
                "known"
            } else {
                "NEW"
            };
            let _ = writeln!(report, "{tag} {aspect:?} {id}: {detail}");
        }
    }
    for (id, aspect) in known.keys() {
        if !found.contains_key(&(id.clone(), *aspect)) {
            let _ = writeln!(report, "FIXED {aspect:?} {id}: remove it from KNOWN");
        }
    }
    eprintln!(
        "vectors per file: {counts:?}; disagreements: {}",
        found.len()
    );
    let unexpected = found.keys().filter(|k| !known.contains_key(k)).count()
        + known.keys().filter(|k| !found.contains_key(k)).count();
    if verbose && unexpected == 0 {
        eprintln!("{report}");
    }
    assert_eq!(
        unexpected, 0,
        "{unexpected} vectors disagree with hujson beyond KNOWN:\n{report}"
    );
}
