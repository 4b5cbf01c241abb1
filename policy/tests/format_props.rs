//! Property tests of `hujson::format` on generated documents: formatting twice changes nothing,
//! the output stands for the same JSON value (read by the crate's parser and, comments
//! stripped, by `serde_json`), every comment survives (up to whitespace), and the output ends
//! with one newline and holds no CR.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_policy::hujson::{self, Document};
use aclc_policy::{Limits, Source};
use aclc_testkit::hujson::strip;
use proptest::prelude::*;
use serde_json::Value as Json;

// --- generators --------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z:@.*/-]{0,12}",
        1 => "[a-z]{20,40}",
        2 => any::<String>(),
        1 => "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{a0}\u{2028}é😀]{0,6}",
    ]
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
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

/// Whitespace and comments that may go between two tokens, the ones formatting has rules for:
/// blank lines, CRLF and lone CR, trailing whitespace, Unicode spaces at the end of a comment,
/// block comments on one line and on several, star-aligned or not.
const GAPS: [&str; 16] = [
    "",
    " ",
    "\n    ",
    "\t",
    "\r\n",
    "\n\n\n\n",
    "\r",
    "// line \"comment\" /* not a block */\n",
    "// trailing space \t \u{a0}\n",
    "/* block // not a line */",
    "/**/",
    "/* multi\n  line\n\n  text */",
    "/*\n     * starred\n     * lines\n     */",
    " /* a */ // b\r\n",
    "//\n",
    "\n\t\t/* own line */\n",
];

/// Where each gap goes and which containers get a trailing comma, in turn.
#[derive(Debug, Clone)]
struct Style {
    gaps: Vec<usize>,
    trailing: Vec<bool>,
}

fn arb_style() -> impl Strategy<Value = Style> {
    (
        prop::collection::vec(0..GAPS.len(), 1..24),
        prop::collection::vec(any::<bool>(), 1..8),
    )
        .prop_map(|(gaps, trailing)| Style { gaps, trailing })
}

/// Writes a value as HuJSON decorated by a [`Style`]; strings use escapes for about half of
/// their characters, so string normalisation is exercised.
struct Writer<'a> {
    style: &'a Style,
    gap: usize,
    trailing: usize,
    out: String,
}

impl Writer<'_> {
    fn gap(&mut self) {
        let gap = GAPS[self.style.gaps[self.gap % self.style.gaps.len()]];
        self.gap += 1;
        self.out.push_str(gap);
    }

    fn token(&mut self, token: &str) {
        self.gap();
        self.out.push_str(token);
    }

    fn string(&mut self, s: &str) {
        let mut text = String::from("\"");
        for (i, c) in s.chars().enumerate() {
            match c {
                '"' => text.push_str("\\\""),
                '\\' => text.push_str("\\\\"),
                c if c < ' ' || (i + self.gap).is_multiple_of(2) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        text.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                c => text.push(c),
            }
        }
        text.push('"');
        self.token(&text);
    }

    fn trailing_comma(&mut self) {
        let yes = self.style.trailing[self.trailing % self.style.trailing.len()];
        self.trailing += 1;
        if yes {
            self.token(",");
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
                    self.string(key);
                    self.token(":");
                    self.value(item);
                }
                if !members.is_empty() {
                    self.trailing_comma();
                }
                self.token("}");
            }
            Json::String(s) => self.string(s),
            scalar => self.token(&serde_json::to_string(scalar).unwrap()),
        }
    }

    fn document(style: &Style, value: &Json) -> String {
        let mut writer = Writer {
            style,
            gap: 0,
            trailing: 0,
            out: String::new(),
        };
        writer.value(value);
        writer.gap();
        // A `//` comment must end with a newline (a CR alone does not end it).
        if writer
            .out
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.contains("//"))
        {
            writer.out.push('\n');
        }
        writer.out
    }
}

// --- oracles -----------------------------------------------------------------------------

fn parse(text: &str) -> Document {
    let (doc, diagnostics) = hujson::parse(&Source::new("prop.hujson", text), &Limits::default());
    assert!(diagnostics.is_empty(), "{text:?}: {diagnostics:#?}");
    doc.unwrap()
}

fn format(text: &str) -> String {
    hujson::format(&Source::new("prop.hujson", text), &Limits::default())
        .unwrap_or_else(|d| panic!("{text:?}: {d:?}"))
}

/// The comments of a document, whitespace removed (formatting re-indents block comments, trims
/// line ends and turns a lone CR into a space).
fn comments(text: &str, doc: &Document) -> Vec<String> {
    doc.comments
        .iter()
        .map(|c| {
            text[c.span.start as usize..c.span.end as usize]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        })
        .collect()
}

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

    #[test]
    fn format_is_idempotent_and_keeps_value_and_comments(value in arb_json(), style in arb_style()) {
        let text = Writer::document(&style, &value);
        let before = parse(&text);
        let once = format(&text);
        prop_assert_eq!(&format(&once), &once, "formatting {:?} twice", text);
        prop_assert!(once.ends_with('\n') && !once.ends_with("\n\n"), "{:?}", once);
        prop_assert!(!once.contains('\r'), "{:?}", once);
        let after = parse(&once);
        prop_assert_eq!(after.root.to_json(), before.root.to_json());
        // (`serde_json` reads floats back only to a close neighbour; both sides read text.)
        let expected: Json = serde_json::from_str(&strip(&text)).unwrap();
        prop_assert_eq!(&after.root.to_json(), &expected);
        let stripped: Json = serde_json::from_str(&strip(&once)).unwrap();
        prop_assert_eq!(&stripped, &expected);
        prop_assert_eq!(comments(&once, &after), comments(&text, &before));
    }

    /// `serde_json`'s pretty output (plain JSON) stays plain JSON: no trailing comma is added.
    #[test]
    fn plain_json_stays_plain(value in arb_json()) {
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let once = format(&pretty);
        prop_assert_eq!(&format(&once), &once);
        prop_assert_eq!(
            serde_json::from_str::<Json>(&once).unwrap(),
            serde_json::from_str::<Json>(&pretty).unwrap()
        );
    }
}
