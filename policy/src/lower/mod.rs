//! Lowering: the HuJSON value tree to the typed [`Policy`], checking shapes (unknown keys,
//! JSON types) and reading every value (selectors, ports, protocols, durations) on the way.
//!
//! Every error is collected; a broken entry is kept with what could be read (or dropped when
//! nothing could), so validation still finds the problems in the rest of the policy.

mod appconnector;
mod derp;
mod rules;
mod sections;
pub(crate) mod suggest;

pub(crate) use appconnector::{APP_CONNECTORS, FIELDS as APP_CONNECTOR_KEYS};
pub(crate) use rules::{ACL_KEYS, GRANT_KEYS, NODE_ATTR_KEYS, SSH_KEYS, SSH_TEST_KEYS, TEST_KEYS};
pub(crate) use sections::{ATTR_CONFIG_KEYS, AUTO_APPROVER_KEYS, EXTERNAL_TAILNET_KEYS};
pub(crate) use suggest::closest;

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::hujson::{Key, Member, Value};
use crate::model::{Alias, AliasError, Autogroup, Policy, Selector, Spanned};
use crate::source::{Source, Span};

/// Lower a document's root value. Returns the model (as much of it as could be read) and
/// every diagnostic found.
pub(crate) fn lower(source: &Source, root: &Value) -> (Policy, Vec<Diagnostic>) {
    let mut lowerer = Lowerer {
        source,
        diags: Vec::new(),
    };
    let policy = lowerer.policy(root);
    (policy, lowerer.diags)
}

/// The top-level keys of a policy file.
pub(crate) const TOP_LEVEL: &[&str] = &[
    "acls",
    "grants",
    "groups",
    "hosts",
    "tagOwners",
    "autoApprovers",
    "ssh",
    "nodeAttrs",
    "tests",
    "sshTests",
    "postures",
    "defaultSrcPosture",
    "ipsets",
    "derpMap",
    "disableIPv4",
    "OneCGNATRoute",
    // The API client's JSON spelling (Terraform and other tools write it).
    "oneCGNATRoute",
    "randomizeClientPort",
    "attrConfig",
    // Extra MagicDNS records, a support-enabled section: not in the documented list, but
    // Tailscale's own policy combiner (tailscale-dev/tailscale-acl-combiner) carries it.
    "extraDNSRecords",
    // Declarative node sharing (alpha).
    "externalTailnets",
];

/// State of one lowering run.
pub(crate) struct Lowerer<'s> {
    source: &'s Source,
    diags: Vec<Diagnostic>,
}

/// The members of an object whose keys were checked against a list of known keys.
pub(crate) struct Fields<'v> {
    /// (canonical key, member), in source order.
    members: Vec<(&'static str, &'v Member)>,
}

impl<'v> Fields<'v> {
    /// The value of `key` (the last one if repeated); `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.member(key).map(|m| &m.value)
    }

    /// The member of `key` (the last one if repeated); `null` counts as absent.
    pub(crate) fn member(&self, key: &str) -> Option<&'v Member> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| *m)
            .filter(|m| !m.value.is_null())
    }
}

/// `groups["group:eng"]`-style path element for an object key.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    format!("{parent}[{}]", crate::model::quote_go(key))
}

impl<'s> Lowerer<'s> {
    /// Record an error and return it for decoration.
    pub(crate) fn error(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::error(code, span, message))
    }

    /// Record a warning and return it for decoration.
    pub(crate) fn warning(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::warning(code, span, message))
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "the element was pushed just before"
    )]
    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// The span of a string's text: inside the quotes, surrounding whitespace trimmed, when
    /// the text is written without escapes; the whole value otherwise.
    pub(crate) fn text_span(&self, span: Span, decoded: &str) -> Span {
        let raw = self.source.slice(span);
        let inner = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .filter(|inner| *inner == decoded);
        match inner {
            // Empty text has nothing to underline: keep the quotes.
            Some(inner) if !inner.trim().is_empty() => {
                let lead = inner.len() - inner.trim_start().len();
                span.sub(1 + lead, 1 + lead + inner.trim().len())
            }
            _ => span,
        }
    }

    /// The span of a key's text, without the quotes when written without escapes.
    pub(crate) fn key_span(&self, key: &Key) -> Span {
        self.text_span(key.span, &key.name)
    }

    /// Report a value of the wrong JSON type.
    pub(crate) fn wrong_type(&mut self, value: &Value, path: &str, expected: &str) {
        let message = format!("{path} must be {expected}, got {}", value.kind_name());
        self.error(Code::WrongType, value.span, message);
    }

    /// Check that `value` is an object and that its keys are known. Unknown keys are errors
    /// (with a suggestion); keys that differ only in case are accepted with a warning, as
    /// Tailscale matches field names case-insensitively.
    pub(crate) fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        expected: &str,
        known: &[&'static str],
    ) -> Option<Fields<'v>> {
        let Some(members) = value.as_object() else {
            self.wrong_type(value, path, expected);
            return None;
        };
        let mut fields = Fields {
            members: Vec::new(),
        };
        for member in members {
            let name = member.key.name.as_str();
            let span = self.key_span(&member.key);
            let field = known
                .iter()
                .find(|k| **k == name)
                .or_else(|| known.iter().find(|k| k.eq_ignore_ascii_case(name)));
            let Some(k) = field else {
                let what = if path.is_empty() {
                    String::new()
                } else {
                    format!(" in {path}")
                };
                let help = match closest(name, known) {
                    Some(k) => format!("did you mean {}?", quote(k)),
                    None => format!(
                        "known fields here: {}",
                        known
                            .iter()
                            .map(|k| quote(k))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let d = self.error(
                    Code::UnknownKey,
                    span,
                    format!("unknown field {}", quote(name)),
                );
                d.label = format!("not a known field{what}");
                d.help = Some(help);
                continue;
            };
            // The same field twice, in two cases (the same case twice is a parse error): the
            // last one is used, as Go's decoder does, which an eye reading the first misses.
            // The same spelling twice is the parse error (`aclc::duplicate_key`) alone.
            let repeated = fields
                .members
                .iter()
                .find(|(f, m)| f == k && m.key.name != name);
            if let Some((_, earlier)) = repeated {
                let earlier = quote(&earlier.key.name);
                self.warning(
                    Code::KeyCase,
                    span,
                    format!(
                        "field {} repeats {earlier} in another case: this one replaces it",
                        quote(name)
                    ),
                )
                .help = Some(
                    "keep one of the two; aclc uses the last, as Go's JSON decoder does \
                     (whether Tailscale accepts the repetition is not verified)"
                        .to_string(),
                );
            } else if *k != name {
                self.warning(
                    Code::KeyCase,
                    span,
                    format!("field {} is spelled {}", quote(name), quote(k)),
                )
                .help = Some(format!(
                    "Tailscale accepts it, but write {} as documented",
                    quote(k)
                ));
            }
            fields.members.push((k, member));
        }
        Some(fields)
    }

    /// The elements of an array (`null`/absent: none).
    pub(crate) fn array<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
        expected: &str,
    ) -> &'v [Value] {
        match value {
            None => &[],
            Some(v) if v.is_null() => &[],
            Some(v) => match v.as_array() {
                Some(items) => items,
                None => {
                    self.wrong_type(v, path, expected);
                    &[]
                }
            },
        }
    }

    /// A string value, whitespace trimmed, with the span of its text.
    pub(crate) fn trimmed(&mut self, value: &Value, path: &str) -> Option<Spanned<String>> {
        match value.as_str() {
            Some(s) => Some(Spanned::new(
                s.trim().to_string(),
                self.text_span(value.span, s),
            )),
            None => {
                self.wrong_type(value, path, "a string");
                None
            }
        }
    }

    /// A string value exactly as written, with the span of its text.
    pub(crate) fn raw_string(&mut self, value: &Value, path: &str) -> Option<Spanned<String>> {
        match value.as_str() {
            Some(s) => {
                let raw = self.source.slice(value.span);
                let span = if raw.len() == s.len() + 2 {
                    value.span.sub(1, 1 + s.len())
                } else {
                    value.span
                };
                Some(Spanned::new(s.to_string(), span))
            }
            None => {
                self.wrong_type(value, path, "a string");
                None
            }
        }
    }

    /// A list of trimmed strings.
    pub(crate) fn strings(
        &mut self,
        value: Option<&Value>,
        path: &str,
        expected: &str,
    ) -> Vec<Spanned<String>> {
        let items = self.array(value, path, expected);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.trimmed(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }

    /// A tag written with capitals: Tailscale reads it in lowercase (`canonical`), so say
    /// which tag it is.
    pub(crate) fn tag_case(&mut self, written: &str, canonical: &str, span: Span) {
        if written != canonical {
            self.warning(
                Code::TagCase,
                span,
                format!("tag {} is read as {}", quote(written), quote(canonical)),
            )
            .help = Some(format!(
                "Tailscale ignores tag name case and reads tags as lowercase; write {}",
                quote(canonical)
            ));
        }
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, value: Option<&Value>, path: &str) -> Option<Spanned<bool>> {
        let v = value?;
        match v.as_bool() {
            Some(b) => Some(Spanned::new(b, v.span)),
            None => {
                self.wrong_type(v, path, "true or false");
                None
            }
        }
    }

    /// A selector read from its (trimmed) text.
    pub(crate) fn selector_from(&mut self, text: Spanned<String>) -> Option<Selector> {
        match Alias::parse(&text.value) {
            Ok(alias) => {
                match &alias {
                    Alias::Tag(tag) => self.tag_case(&text.value, tag, text.span),
                    Alias::User(login) if text.value.starts_with("user:") => {
                        self.warning(
                            Code::UserPrefix,
                            text.span,
                            format!(
                                "{} is read as the user {}: aclc cannot verify that Tailscale accepts the user: prefix here",
                                quote(&text.value),
                                quote(login)
                            ),
                        )
                        .help = Some(format!(
                            "Tailscale's reference documents user: only as user:*@domain; write {}",
                            quote(login)
                        ));
                    }
                    _ => {}
                }
                Some(Selector {
                    alias,
                    text: text.value,
                    span: text.span,
                })
            }
            Err(AliasError::Empty) => {
                self.error(Code::EmptySelector, text.span, "empty selector")
                    .help = Some(
                    "write a user, group:, tag:, autogroup:, host alias, IP or prefix, or remove the entry"
                        .to_string(),
                );
                None
            }
            Err(AliasError::UnknownAutogroup(name)) => {
                let known: Vec<&str> = Autogroup::ALL.iter().map(|a| a.as_str()).collect();
                let help = match closest(&name, &known) {
                    Some(k) => format!("did you mean {}?", quote(k)),
                    None => format!("known autogroups: {}", known.join(", ")),
                };
                self.error(
                    Code::UnknownAutogroup,
                    text.span,
                    format!("unknown autogroup {}", quote(&name)),
                )
                .help = Some(help);
                None
            }
            Err(AliasError::BadUserDomain(name)) => {
                self.error(
                    Code::InvalidUserDomain,
                    text.span,
                    format!("invalid selector {}", quote(&name)),
                )
                .help = Some("the `user:` form is `user:*@domain`".to_string());
                None
            }
        }
    }

    /// A selector from a JSON string.
    pub(crate) fn selector(&mut self, value: &Value, path: &str) -> Option<Selector> {
        let text = self.trimmed(value, path)?;
        self.selector_from(text)
    }

    /// A list of selectors.
    pub(crate) fn selectors(&mut self, value: Option<&Value>, path: &str) -> Vec<Selector> {
        let items = self.array(value, path, "an array of strings");
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.selector(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }
}

/// A string in double quotes, escaped as Go's `%q` does for the common cases.
pub(crate) fn quote(s: &str) -> String {
    crate::model::quote_go(s)
}
