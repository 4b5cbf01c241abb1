//! Property tests of the HuJSON parser: it reads what `serde_json` reads, the same way; it reads
//! nothing `serde_json` would refuse once comments and trailing commas are blanked out; `json5`
//! (a superset) reads everything it reads; spans cover exactly their value; and no input of any
//! kind makes it panic.
//!
//! Known, documented differences, which the checks allow for:
//! - `serde_json` refuses numbers beyond `f64` (`1e400`) and nesting of 128 levels or more;
//!   RFC 8259 allows both and so does the parser (its own depth limit is 128 levels).
//! - `json5` 0.4 reads integers as `i64` only, refuses numbers beyond `f64`, and treats U+2028,
//!   U+2029 and a lone CR as line breaks (refused raw inside strings, ending `//` comments, where
//!   HuJSON, like Tailscale's parser, ends them at LF only). Inputs with those are not compared
//!   with `json5`. Numbers are compared as `f64`, since `json5` keeps
//!   only that.
//! - A `//` comment that runs into the end of the input is refused, as Tailscale's parser
//!   refuses it; `json5` reads it. Generated documents end such a comment with a newline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_policy::hujson::{self, Document, Value, ValueKind};
use aclc_policy::{source_from_bytes, Diagnostic, Limits, Source};
use aclc_testkit::hujson::strip;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value as Json;

// --- generators --------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z:@.*/-]{0,12}",
        2 => any::<String>(),
        1 => "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{80}-\u{a0}\u{2028}\u{2029}\u{fffd}😀é]{0,8}",
    ]
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        (-1000i64..1000).prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        arb_string().prop_map(Json::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Array),
            prop::collection::vec((arb_string(), inner), 0..8)
                .prop_map(|members| Json::Object(members.into_iter().collect())),
        ]
    })
}

/// Whitespace and comments that may go between two tokens: the HuJSON text, the plain JSON it
/// stands for, and how many comments it holds.
const GAPS: [(&str, &str, usize); 11] = [
    ("", "", 0),
    (" ", " ", 0),
    ("\n    ", "\n    ", 0),
    ("\t", "\t", 0),
    ("\r\n", "\r\n", 0),
    ("// line \"comment\" /* not a block, é\n", "\n", 1),
    ("/* block // not a line, \"x */", " ", 1),
    ("/**/", "", 1),
    ("/* multi\nline * / ** */", " ", 1),
    (" /* a */ // b\r\n", " \r\n", 2),
    ("//\n", "\n", 1),
];

/// How to decorate a value: which gaps to use in turn and where to put trailing commas.
#[derive(Debug, Clone)]
struct Style {
    gaps: Vec<usize>,
    trailing: Vec<bool>,
    /// End the document with a line comment (and its newline: without one, the document is
    /// refused, see `line_comment_at_end_needs_a_newline`).
    final_comment: bool,
}

fn arb_style() -> impl Strategy<Value = Style> {
    (
        prop::collection::vec(0..GAPS.len(), 1..16),
        prop::collection::vec(any::<bool>(), 1..8),
        any::<bool>(),
    )
        .prop_map(|(gaps, trailing, final_comment)| Style {
            gaps,
            trailing,
            final_comment,
        })
}

/// Writes a value as HuJSON (decorated by a [`Style`]) and as the plain JSON it stands for.
struct Writer<'a> {
    style: &'a Style,
    gap: usize,
    trailing: usize,
    hujson: String,
    json: String,
    comments: usize,
}

impl Writer<'_> {
    fn gap(&mut self) {
        let (hujson, json, comments) = GAPS[self.style.gaps[self.gap % self.style.gaps.len()]];
        self.gap += 1;
        self.hujson.push_str(hujson);
        self.json.push_str(json);
        self.comments += comments;
    }

    fn token(&mut self, token: &str) {
        self.gap();
        self.hujson.push_str(token);
        self.json.push_str(token);
    }

    fn trailing_comma(&mut self) {
        let yes = self.style.trailing[self.trailing % self.style.trailing.len()];
        self.trailing += 1;
        if yes {
            self.gap();
            self.hujson.push(',');
        }
    }

    fn value(&mut self, value: &Json) {
        match value {
            Json::Array(items) => {
                self.token("[");
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        self.token(",");
                    }
                    self.value(item);
                }
                if !items.is_empty() {
                    self.trailing_comma();
                }
                self.token("]");
            }
            Json::Object(members) => {
                self.token("{");
                for (n, (key, item)) in members.iter().enumerate() {
                    if n > 0 {
                        self.token(",");
                    }
                    self.token(&serde_json::to_string(key).unwrap());
                    self.token(":");
                    self.value(item);
                }
                if !members.is_empty() {
                    self.trailing_comma();
                }
                self.token("}");
            }
            scalar => self.token(&serde_json::to_string(scalar).unwrap()),
        }
    }

    fn document<'s>(style: &'s Style, value: &Json) -> Writer<'s> {
        let mut writer = Writer {
            style,
            gap: 0,
            trailing: 0,
            hujson: String::new(),
            json: String::new(),
            comments: 0,
        };
        writer.value(value);
        writer.gap();
        if style.final_comment {
            writer.hujson.push_str("// the end\n");
            writer.json.push('\n');
            writer.comments += 1;
        }
        writer
    }
}

/// HuJSON-looking tokens, so that random sequences of them are sometimes valid.
const TOKENS: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"a\"",
    "\"b\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud800\"",
    "1",
    "-0.5e3",
    "01",
    "1.",
    "true",
    "null",
    "nul",
    " ",
    "\n",
    "// c\n",
    "/* c */",
    "/*",
    "'x'",
];

fn arb_token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&TOKENS[..]), 0..24).prop_map(|t| t.concat())
}

/// Edits to apply to a text: (where, what, byte).
fn arb_edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    let bytes = prop::sample::select(
        &b"{}[],:\"\\/*' \n\t\r0123456789.eE+-abcdefnrtu\x00\x1f\x7f\xc3\xa9\xef\xbb\xbf\xff"[..],
    );
    prop::collection::vec((any::<usize>(), 0..3u8, bytes), 1..4)
}

fn apply_edits(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, what, byte) in edits {
        let at = at % (bytes.len() + 1);
        match what {
            0 => bytes.insert(at, byte),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = byte,
            _ => bytes.push(byte),
        }
    }
    bytes
}

// --- oracles -----------------------------------------------------------------------------

/// A `serde_json` refusal that RFC 8259 (and so the parser) allows.
/// A refusal of serde_json's that the parser does not share: its limits, and half a
/// surrogate pair, which serde_json refuses and Tailscale's parser reads as U+FFFD.
fn serde_limit(error: &serde_json::Error) -> bool {
    let message = error.to_string();
    message.contains("number out of range")
        || message.contains("recursion limit exceeded")
        || message.contains("surrogate")
        || message.contains("unexpected end of hex escape")
}

struct Parsed {
    source: Source,
    doc: Option<Document>,
    diagnostics: Vec<Diagnostic>,
}

fn parse_bytes(bytes: &[u8]) -> Parsed {
    let limits = Limits::default();
    let (source, mut diagnostics) = source_from_bytes("prop.hujson", bytes, &limits);
    let (doc, more) = hujson::parse(&source, &limits);
    if diagnostics.iter().any(Diagnostic::is_error) {
        // The bytes were refused; whatever the parser made of the lossy text does not count.
        return Parsed {
            source,
            doc: None,
            diagnostics,
        };
    }
    diagnostics.extend(more);
    Parsed {
        source,
        doc,
        diagnostics,
    }
}

/// Every diagnostic is well formed: a code, a one-line message in house style, a span inside
/// the text.
fn check_diagnostics(parsed: &Parsed) -> Result<(), TestCaseError> {
    for d in &parsed.diagnostics {
        prop_assert!(d.code.as_str().starts_with("aclc::"), "{d:?}");
        prop_assert!(!d.message.is_empty() && !d.message.contains('\n'), "{d:?}");
        // Tailscale's words may quote a literal that ends with one (`invalid literal: 1.`).
        prop_assert!(
            !d.message.ends_with('.') || d.message.starts_with("invalid literal: "),
            "{d:?}"
        );
        prop_assert!(!d.message.starts_with(char::is_uppercase), "{d:?}");
        prop_assert!(d.span.start <= d.span.end, "{d:?}");
        prop_assert!(d.span.end as usize <= parsed.source.text().len(), "{d:?}");
        prop_assert!(
            parsed
                .source
                .text()
                .get(d.span.start as usize..d.span.end as usize)
                .is_some(),
            "span not on character boundaries: {d:?}"
        );
    }
    if parsed.doc.is_none() {
        prop_assert!(
            parsed.diagnostics.iter().any(Diagnostic::is_error),
            "no document and no error"
        );
    }
    Ok(())
}

/// The parser against `serde_json` on any bytes.
fn agrees_with_serde(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = parse_bytes(bytes);
    check_diagnostics(&parsed)?;
    let only_duplicates = parsed
        .diagnostics
        .iter()
        .all(|d| d.code == "aclc::duplicate_key");
    let accepted = parsed.doc.as_ref().filter(|_| only_duplicates);
    match (serde_json::from_slice::<Json>(bytes), accepted) {
        (Ok(theirs), Some(doc)) => {
            if parsed.diagnostics.is_empty() {
                prop_assert_eq!(doc.root.to_json(), theirs);
            }
        }
        (Ok(_), None) => {
            prop_assert!(
                false,
                "serde_json accepts {:?} but the parser says {:#?}",
                String::from_utf8_lossy(bytes),
                parsed.diagnostics
            );
        }
        (Err(error), Some(doc)) => {
            // Only the HuJSON extensions, or a limit of serde_json's, may explain a refusal.
            let text = parsed.source.text();
            let stripped = strip(text);
            prop_assert!(
                stripped != text || serde_limit(&error),
                "the parser accepts {text:?}, which has no comment or trailing comma, but \
                 serde_json says {error}"
            );
            match serde_json::from_str::<Json>(&stripped) {
                Ok(theirs) => {
                    if parsed.diagnostics.is_empty() {
                        prop_assert_eq!(doc.root.to_json(), theirs);
                    }
                }
                Err(error) => prop_assert!(
                    serde_limit(&error),
                    "the parser accepts {text:?}; serde_json refuses it stripped ({stripped:?}): \
                     {error}"
                ),
            }
        }
        (Err(_), None) => {}
    }
    Ok(())
}

/// Numbers of an input that `json5` 0.4 cannot read the same way (see the file's doc).
fn json5_cannot_compare(value: &Value) -> bool {
    match &value.kind {
        ValueKind::Number(n) => {
            let integer = !n.0.contains(['.', 'e', 'E']);
            (integer && n.0.parse::<i64>().is_err()) || !n.as_f64().is_finite()
        }
        ValueKind::Array(items) => items.iter().any(json5_cannot_compare),
        ValueKind::Object(members) => members.iter().any(|m| json5_cannot_compare(&m.value)),
        _ => false,
    }
}

/// The parser's value and `json5`'s agree (numbers as `f64`, last duplicate wins).
fn same_as_json5(ours: &Value, theirs: &Json) -> bool {
    match (&ours.kind, theirs) {
        (ValueKind::Null, Json::Null) => true,
        (ValueKind::Bool(a), Json::Bool(b)) => a == b,
        (ValueKind::Number(a), Json::Number(b)) => b.as_f64() == Some(a.as_f64()),
        (ValueKind::String(a), Json::String(b)) => a == b,
        (ValueKind::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_as_json5(x, y))
        }
        (ValueKind::Object(members), Json::Object(map)) => {
            let mut last = std::collections::BTreeMap::new();
            for m in members {
                last.insert(m.key.name.as_str(), &m.value);
            }
            last.len() == map.len()
                && last
                    .iter()
                    .all(|(k, v)| map.get(*k).is_some_and(|t| same_as_json5(v, t)))
        }
        _ => false,
    }
}

/// On text the parser accepts, `json5` accepts too and reads the same value.
fn agrees_with_json5(text: &str) -> Result<(), TestCaseError> {
    let parsed = parse_bytes(text.as_bytes());
    let Some(doc) = parsed
        .doc
        .as_ref()
        .filter(|_| parsed.diagnostics.is_empty())
    else {
        return Ok(());
    };
    // A CR ends a `//` comment for json5, only a LF for HuJSON (and Tailscale's parser).
    let cr_in_comment = doc
        .comments
        .iter()
        .any(|c| parsed.source.slice(c.span).contains('\r'));
    // json5 refuses half a surrogate pair, which the parser reads as U+FFFD (as Tailscale's
    // does); whole pairs are compared with serde_json.
    let lower = text.to_ascii_lowercase();
    let surrogate = [
        "\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf",
    ]
    .iter()
    .any(|s| lower.contains(s));
    if text.contains(['\u{2028}', '\u{2029}'])
        || cr_in_comment
        || surrogate
        || json5_cannot_compare(&doc.root)
    {
        return Ok(());
    }
    match json5::from_str::<Json>(text) {
        Ok(theirs) => prop_assert!(
            same_as_json5(&doc.root, &theirs),
            "json5 reads {text:?} as {theirs:?}, the parser as {:?}",
            doc.root.to_json()
        ),
        Err(error) => prop_assert!(
            false,
            "the parser accepts {text:?}, json5 refuses it: {error}"
        ),
    }
    Ok(())
}

/// Each key's and value's span, cut out of the text, reads as that key or value.
fn spans_cover_their_values(source: &Source, value: &Value) -> Result<(), TestCaseError> {
    let text = strip(source.slice(value.span));
    let theirs: Json = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("span {text:?} of {value:?}: {e}")))?;
    prop_assert_eq!(value.to_json(), theirs);
    match &value.kind {
        ValueKind::Array(items) => {
            for item in items {
                spans_cover_their_values(source, item)?;
            }
        }
        ValueKind::Object(members) => {
            for m in members {
                let key: String = serde_json::from_str(source.slice(m.key.span))
                    .map_err(|e| TestCaseError::fail(format!("key span of {m:?}: {e}")))?;
                prop_assert_eq!(&key, &m.key.name);
                spans_cover_their_values(source, &m.value)?;
            }
        }
        _ => {}
    }
    Ok(())
}

// --- properties --------------------------------------------------------------------------

/// 512 cases per property, unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    /// `serde_json`'s own output, compact and pretty, reads back the same.
    #[test]
    fn reads_serde_json_output(value in arb_json()) {
        let compact = serde_json::to_string(&value).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        for text in [compact, pretty] {
            let parsed = parse_bytes(text.as_bytes());
            prop_assert!(parsed.diagnostics.is_empty(), "{text:?}: {:#?}", parsed.diagnostics);
            let doc = parsed.doc.unwrap();
            let theirs: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(doc.root.to_json(), theirs);
            prop_assert!(doc.comments.is_empty());
            agrees_with_json5(&text)?;
        }
    }

    /// Comments and trailing commas anywhere between tokens change nothing but the comments.
    #[test]
    fn reads_decorated_json(value in arb_json(), style in arb_style()) {
        let writer = Writer::document(&style, &value);
        let parsed = parse_bytes(writer.hujson.as_bytes());
        prop_assert!(
            parsed.diagnostics.is_empty(),
            "{:?}: {:#?}",
            writer.hujson,
            parsed.diagnostics
        );
        let doc = parsed.doc.as_ref().unwrap();
        let theirs: Json = serde_json::from_str(&writer.json).unwrap();
        prop_assert_eq!(doc.root.to_json(), theirs.clone());
        prop_assert_eq!(doc.comments.len(), writer.comments);
        // Stripping by the comment spans the parser reported also gives JSON with the same value.
        let mut text = writer.hujson.clone().into_bytes();
        for comment in &doc.comments {
            for byte in &mut text[comment.span.start as usize..comment.span.end as usize] {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
        }
        let text = String::from_utf8(text).unwrap();
        let by_spans: Json = serde_json::from_str(&strip(&text)).unwrap();
        prop_assert_eq!(by_spans, theirs);
        spans_cover_their_values(&parsed.source, &doc.root)?;
        agrees_with_serde(writer.hujson.as_bytes())?;
        agrees_with_json5(&writer.hujson)?;
    }

    /// A `//` comment that runs into the end of the input is refused, as Tailscale's HuJSON
    /// parser refuses it (`parsing comment: unexpected EOF`), whatever comes before it.
    #[test]
    fn line_comment_at_end_needs_a_newline(value in arb_json(), style in arb_style()) {
        let text = format!("{}// the end", Writer::document(&style, &value).hujson);
        let parsed = parse_bytes(text.as_bytes());
        prop_assert!(parsed.doc.is_none(), "{text:?}");
        prop_assert_eq!(parsed.diagnostics.len(), 1, "{:?}: {:#?}", text, parsed.diagnostics);
        let d = &parsed.diagnostics[0];
        prop_assert_eq!(d.code, "aclc::syntax");
        prop_assert_eq!(d.message.as_str(), "parsing comment: unexpected EOF");
        prop_assert_eq!(parsed.source.slice(d.span), "// the end");
        check_diagnostics(&parsed)?;
    }

    /// Valid documents with a few bytes inserted, removed or replaced.
    #[test]
    fn mutated_json(
        value in arb_json(),
        style in arb_style(),
        edits in arb_edits(),
        pretty in any::<bool>(),
    ) {
        let text = if pretty {
            Writer::document(&style, &value).hujson
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let bytes = apply_edits(&text, &edits);
        agrees_with_serde(&bytes)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            agrees_with_json5(text)?;
        }
    }

    /// Random sequences of HuJSON-looking tokens.
    #[test]
    fn token_soup(text in arb_token_soup()) {
        agrees_with_serde(text.as_bytes())?;
        agrees_with_json5(&text)?;
    }

    /// Random text over the characters that matter to the grammar.
    #[test]
    fn grammar_alphabet(
        text in "[\\[\\]{}:,\"\\\\/* a-z0-9.+\\-\n\t\r\u{0}\u{a0}\u{feff}\u{2028}é😀']{0,64}",
    ) {
        agrees_with_serde(text.as_bytes())?;
        agrees_with_json5(&text)?;
    }

    /// Arbitrary bytes never make it panic, and every diagnostic is well formed.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        agrees_with_serde(&bytes)?;
    }

    /// Arbitrary strings never make it panic.
    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        agrees_with_serde(text.as_bytes())?;
        agrees_with_json5(&text)?;
    }
}

/// Nesting: the parser's limit is 128 levels, `serde_json`'s 127; both agree below.
#[test]
fn nesting_against_serde_json() {
    for depth in [1, 50, 127, 128, 129, 1000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let parsed = parse_bytes(text.as_bytes());
        assert_eq!(parsed.doc.is_some(), depth <= 128, "depth {depth}");
        let serde = serde_json::from_str::<Json>(&text);
        if depth < 128 {
            assert!(serde.is_ok(), "depth {depth}");
        }
        agrees_with_serde(text.as_bytes()).unwrap();
    }
}

/// A long run of random and mutated inputs, for when no fuzzer is at hand:
/// `cargo test -p aclc-policy --release --test hujson_props -- --ignored stress`.
/// `ACLC_STRESS_CASES` sets the number of inputs (default 1,000,000).
#[test]
#[ignore = "slow: a stress run, not a unit test"]
fn stress_never_panics() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

    let cases: usize = std::env::var("ACLC_STRESS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut runner = TestRunner::new(Config::default());
    let bytes = prop::collection::vec(any::<u8>(), 0..512);
    let mutated = (arb_json(), arb_style(), arb_edits()).prop_map(|(value, style, edits)| {
        apply_edits(&Writer::document(&style, &value).hujson, &edits)
    });
    let soup = arb_token_soup().prop_map(String::into_bytes);
    let inputs = prop_oneof![bytes, mutated, soup];
    let started = std::time::Instant::now();
    for n in 0..cases {
        let input = inputs.new_tree(&mut runner).unwrap().current();
        if let Err(error) = agrees_with_serde(&input) {
            panic!("input {n} ({:?}): {error}", String::from_utf8_lossy(&input));
        }
    }
    eprintln!("{cases} inputs in {:.1?}", started.elapsed());
}
