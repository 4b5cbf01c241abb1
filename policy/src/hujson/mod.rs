//! HuJSON (JSON with comments and trailing commas) as a tree with a span on every key and value.
//!
//! The tree keeps comments beside the values so a formatter can be built without a second parser.

mod errors;
mod format;
mod parser;
mod tailscale;
#[cfg(test)]
mod tests;

pub use format::format;
pub use parser::parse;
pub(crate) use parser::too_large;

use crate::source::Span;

/// A parsed HuJSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The single top-level value.
    pub root: Value,
    /// Every comment, in source order.
    pub comments: Vec<Comment>,
}

/// A comment and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The whole comment, delimiters included.
    pub span: Span,
    /// `//` or `/* */`.
    pub kind: CommentKind,
}

/// The two comment forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    /// `// ...` up to the end of the line.
    Line,
    /// `/* ... */`.
    Block,
}

/// A JSON value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What it is.
    pub kind: ValueKind,
    /// Where it is (for strings, the quotes included).
    pub span: Span,
}

/// The JSON value kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, kept as written (RFC 8259 grammar) so no precision is lost.
    Number(Number),
    /// A string, escapes decoded.
    String(String),
    /// `[...]`
    Array(Vec<Value>),
    /// `{...}`, members in source order (duplicate keys are reported by the parser).
    Object(Vec<Member>),
}

/// One `"key": value` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The key, escapes decoded, span including the quotes.
    pub key: Key,
    /// The value.
    pub value: Value,
}

/// An object key with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Decoded text.
    pub name: String,
    /// Span including the quotes.
    pub span: Span,
}

/// A JSON number as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(pub String);

impl Number {
    /// The value as `u64`, if it is a non-negative integer written without fraction or exponent.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The value as `i64`, if it is an integer written without fraction or exponent.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// The value as `f64` (always succeeds for valid JSON numbers; may round).
    pub fn as_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }
}

impl Value {
    /// A short name of the kind, as a person would say it: `a string`, `an array`, ...
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Number(_) => "a number",
            ValueKind::String(_) => "a string",
            ValueKind::Array(_) => "an array",
            ValueKind::Object(_) => "an object",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match &self.kind {
            ValueKind::Array(v) => Some(v),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[Member]> {
        match &self.kind {
            ValueKind::Object(v) => Some(v),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            ValueKind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, ValueKind::Null)
    }

    /// The value without spans, as `serde_json` would have parsed it (last duplicate key wins).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            ValueKind::Null => serde_json::Value::Null,
            ValueKind::Bool(b) => serde_json::Value::Bool(*b),
            ValueKind::Number(n) => serde_json::from_str(&n.0).unwrap_or(serde_json::Value::Null),
            ValueKind::String(s) => serde_json::Value::String(s.clone()),
            ValueKind::Array(v) => serde_json::Value::Array(v.iter().map(Value::to_json).collect()),
            ValueKind::Object(m) => serde_json::Value::Object(
                m.iter()
                    .map(|m| (m.key.name.clone(), m.value.to_json()))
                    .collect(),
            ),
        }
    }
}
