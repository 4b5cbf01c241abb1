//! Device posture conditions (Tailscale KB "Device posture management", kb/1288): the grammar
//! of one line of a `postures` entry, its typed model, the attribute namespaces aclc knows, and
//! how a condition judges one device's attribute value.
//!
//! A condition is a bare attribute (`node:tsAutoUpdate`: true when the attribute is the boolean
//! `true`) or `ATTRIBUTE OPERATOR VALUE`. The evaluator lives here, beside the grammar, because
//! it is a pure function of the condition and one JSON value; which devices carry which values
//! is the compiler's business.

use std::cmp::Ordering;

use serde::{Serialize, Serializer};

/// How a condition compares its attribute with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostureOperator {
    /// A bare attribute: the attribute is the boolean `true`.
    IsTrue,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `IN [...]`
    In,
    /// `NOT IN [...]`
    NotIn,
    /// `IS SET`
    IsSet,
    /// `NOT SET`
    NotSet,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl PostureOperator {
    /// The operator as written in canonical form (empty for a bare attribute).
    pub fn as_str(self) -> &'static str {
        match self {
            PostureOperator::IsTrue => "",
            PostureOperator::Eq => "==",
            PostureOperator::Ne => "!=",
            PostureOperator::In => "IN",
            PostureOperator::NotIn => "NOT IN",
            PostureOperator::IsSet => "IS SET",
            PostureOperator::NotSet => "NOT SET",
            PostureOperator::Lt => "<",
            PostureOperator::Le => "<=",
            PostureOperator::Gt => ">",
            PostureOperator::Ge => ">=",
        }
    }

    /// True for `<`, `<=`, `>`, `>=`.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            PostureOperator::Lt | PostureOperator::Le | PostureOperator::Gt | PostureOperator::Ge
        )
    }
}

impl Serialize for PostureOperator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PostureValue {
    /// `'macos'` or `"macos"`.
    Str(String),
    /// `80`, `1.5`.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `['macos', 'linux']` (only with `IN` / `NOT IN`).
    List(Vec<PostureValue>),
}

impl PostureValue {
    /// The strings it holds: itself, or a list's string items.
    pub fn strings(&self) -> Vec<&str> {
        match self {
            PostureValue::Str(s) => vec![s.as_str()],
            PostureValue::List(items) => items
                .iter()
                .filter_map(|v| match v {
                    PostureValue::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One posture condition, e.g. `node:os IN ['macos', 'linux']`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostureCondition {
    /// The attribute (`node:os`, `custom:tier`, ...).
    pub attribute: String,
    /// The operator.
    pub operator: PostureOperator,
    /// The value (`None` for a bare attribute, `IS SET` and `NOT SET`).
    pub value: Option<PostureValue>,
    /// The value as written (empty when there is none).
    pub value_text: String,
    /// The whole condition as written, trimmed.
    pub text: String,
}

/// Why a condition does not parse: which bytes of the text (as given, untrimmed) are wrong and
/// what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostureSyntaxError {
    /// Start of the offending part (byte offset into the text).
    pub start: usize,
    /// End of the offending part.
    pub end: usize,
    /// What is wrong and how to fix it, one sentence.
    pub help: String,
}

/// Attributes of the `node:` namespace that Tailscale fills in itself (kb/1288).
pub const NODE_ATTRIBUTES: &[&str] = &[
    "os",
    "osVersion",
    "tsVersion",
    "tsReleaseTrack",
    "tsAutoUpdate",
    "tsStateEncrypted",
];

/// Attributes of the `ip:` namespace aclc knows.
pub const IP_ATTRIBUTES: &[&str] = &["country"];

/// Namespaces whose attribute names aclc does not check: `custom:` (set through the API) and
/// the posture integrations Tailscale documents (CrowdStrike `falcon:` kb/1289, SentinelOne
/// `sentinelOne:` kb/1390, and Intune, Jamf Pro, Kandji, Kolide, Huntress, Fleet, Chrome).
/// Fleet writes two: `fleet:present`, and `fleetPolicy:{name}` for each Fleet policy a device
/// passes (Tailscale docs "Restrict device access with Fleet").
pub const OPEN_NAMESPACES: &[&str] = &[
    "custom",
    "falcon",
    "intune",
    "jamfPro",
    "kandji",
    "kolide",
    "sentinelOne",
    "huntress",
    "fleet",
    "fleetPolicy",
    "googleChrome",
];

/// What aclc knows about an attribute name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeStatus {
    /// A documented attribute or one of an open namespace.
    Known,
    /// A known namespace (`node:`, `ip:`) but an attribute aclc does not know.
    UnknownAttribute,
    /// A namespace aclc does not know; the known one it resembles, if any.
    UnknownNamespace(Option<&'static str>),
}

/// What aclc knows about `attribute` (which has a namespace: the parser checked).
pub fn attribute_status(attribute: &str) -> AttributeStatus {
    let Some((namespace, name)) = attribute.split_once(':') else {
        return AttributeStatus::UnknownNamespace(None);
    };
    let known_in = |list: &[&str]| {
        if list.contains(&name) {
            AttributeStatus::Known
        } else {
            AttributeStatus::UnknownAttribute
        }
    };
    match namespace {
        "node" => known_in(NODE_ATTRIBUTES),
        "ip" => known_in(IP_ATTRIBUTES),
        ns if OPEN_NAMESPACES.contains(&ns) => AttributeStatus::Known,
        ns => AttributeStatus::UnknownNamespace(
            ["node", "ip"]
                .iter()
                .chain(OPEN_NAMESPACES)
                .find(|k| k.eq_ignore_ascii_case(ns))
                .copied(),
        ),
    }
}

const OPERATORS_HELP: &str = "operators are ==, !=, <, <=, >, >=, IN, NOT IN, IS SET and NOT SET";

/// Read one condition.
pub fn parse_condition(text: &str) -> Result<PostureCondition, PostureSyntaxError> {
    Parser { text, pos: 0 }.condition()
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

fn fail<T>(start: usize, end: usize, help: impl Into<String>) -> Result<T, PostureSyntaxError> {
    Err(PostureSyntaxError {
        start,
        end,
        help: help.into(),
    })
}

/// Characters that end an attribute or a bare word.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || "=!<>'\"[](),".contains(c)
}

impl<'t> Parser<'t> {
    fn rest(&self) -> &'t str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The run of characters satisfying `keep`, consumed.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> (usize, &'t str) {
        let start = self.pos;
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        (start, rest.get(..len).unwrap_or(""))
    }

    fn condition(mut self) -> Result<PostureCondition, PostureSyntaxError> {
        self.skip_space();
        let trimmed = self.text.trim();
        if trimmed.is_empty() {
            return fail(0, self.text.len(), "a condition cannot be empty");
        }
        let (start, attribute) = self.take_while(|c| !is_delimiter(c));
        if attribute.is_empty() {
            return fail(
                start,
                self.text.len(),
                "a condition starts with an attribute, e.g. `node:os == 'macos'`",
            );
        }
        check_namespace(attribute, start)?;
        let done =
            |operator, value: Option<(PostureValue, &str)>| -> Result<_, PostureSyntaxError> {
                let (value, value_text) = match value {
                    Some((v, t)) => (Some(v), t.to_string()),
                    None => (None, String::new()),
                };
                Ok(PostureCondition {
                    attribute: attribute.to_string(),
                    operator,
                    value,
                    value_text,
                    text: trimmed.to_string(),
                })
            };
        self.skip_space();
        if self.rest().is_empty() {
            return done(PostureOperator::IsTrue, None);
        }
        let (op_start, operator) = self.operator()?;
        let op_end = self.pos;
        self.skip_space();
        if matches!(operator, PostureOperator::IsSet | PostureOperator::NotSet) {
            if !self.rest().trim_end().is_empty() {
                return fail(
                    self.pos,
                    self.text.trim_end().len(),
                    format!("`{}` takes no value", operator.as_str()),
                );
            }
            return done(operator, None);
        }
        if self.rest().trim_end().is_empty() {
            let example = match operator {
                PostureOperator::In | PostureOperator::NotIn => "['macos', 'linux']",
                op if op.is_ordering() => "'1.60'",
                _ => "'macos'",
            };
            return fail(
                op_start,
                op_end,
                format!(
                    "`{}` needs a value after it, e.g. `{attribute} {} {example}`",
                    operator.as_str(),
                    operator.as_str()
                ),
            );
        }
        let value_start = self.pos;
        let value = self.value(true)?;
        let value_text = self.text.get(value_start..self.pos).unwrap_or("");
        self.skip_space();
        if !self.rest().is_empty() {
            return fail(
                self.pos,
                self.text.trim_end().len(),
                "unexpected text after the value; write one condition per line of the posture",
            );
        }
        check_value_type(operator, &value, value_start, self.pos)?;
        done(operator, Some((value, value_text)))
    }

    fn operator(&mut self) -> Result<(usize, PostureOperator), PostureSyntaxError> {
        let start = self.pos;
        let (_, symbol) = self.take_while(|c| "=!<>".contains(c));
        if !symbol.is_empty() {
            let op = match symbol {
                "==" => PostureOperator::Eq,
                "!=" => PostureOperator::Ne,
                "<" => PostureOperator::Lt,
                "<=" => PostureOperator::Le,
                ">" => PostureOperator::Gt,
                ">=" => PostureOperator::Ge,
                "=" => return fail(start, self.pos, "unknown operator `=`: did you mean `==`?"),
                "=>" => return fail(start, self.pos, "unknown operator `=>`: did you mean `>=`?"),
                "=<" => return fail(start, self.pos, "unknown operator `=<`: did you mean `<=`?"),
                other => {
                    return fail(
                        start,
                        self.pos,
                        format!("unknown operator `{other}`: {OPERATORS_HELP}"),
                    )
                }
            };
            return Ok((start, op));
        }
        let (_, word) = self.take_while(|c| !is_delimiter(c));
        let second = |p: &mut Parser<'t>| {
            let before = p.pos;
            p.skip_space();
            let word = p.take_while(|c| !is_delimiter(c)).1;
            if word.is_empty() {
                p.pos = before;
            }
            word.to_ascii_uppercase()
        };
        let op = match word.to_ascii_uppercase().as_str() {
            "IN" => PostureOperator::In,
            "NOT" => match second(self).as_str() {
                "IN" => PostureOperator::NotIn,
                "SET" => PostureOperator::NotSet,
                _ => {
                    return fail(
                        start,
                        self.pos,
                        format!(
                            "unknown operator: `NOT` goes with `IN` or `SET`; {OPERATORS_HELP}"
                        ),
                    )
                }
            },
            "IS" => match second(self).as_str() {
                "SET" => PostureOperator::IsSet,
                _ => {
                    return fail(
                        start,
                        self.pos,
                        format!("unknown operator: `IS` goes with `SET`; {OPERATORS_HELP}"),
                    )
                }
            },
            "" => {
                let end = self.pos + self.peek().map_or(0, char::len_utf8);
                return fail(
                    start,
                    end,
                    format!("expected an operator: {OPERATORS_HELP}"),
                );
            }
            _ => {
                return fail(
                    start,
                    self.pos,
                    format!("unknown operator `{word}`: {OPERATORS_HELP}"),
                )
            }
        };
        Ok((start, op))
    }

    /// A value; lists only when `list_allowed` (they do not nest).
    fn value(&mut self, list_allowed: bool) -> Result<PostureValue, PostureSyntaxError> {
        let start = self.pos;
        match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                let body = self.rest().get(1..).unwrap_or("");
                let Some(len) = body.find(quote) else {
                    return fail(
                        start,
                        self.text.trim_end().len(),
                        format!("unterminated string: add the closing {quote}"),
                    );
                };
                self.pos += len + 2;
                Ok(PostureValue::Str(body.get(..len).unwrap_or("").to_string()))
            }
            Some('[') if !list_allowed => fail(
                start,
                start + 1,
                "lists do not nest: a list holds strings, numbers or booleans",
            ),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.peek() {
                        None => {
                            return fail(
                                start,
                                self.text.trim_end().len(),
                                "unterminated list: add the closing ]",
                            )
                        }
                        Some(']') => {
                            self.pos += 1;
                            return Ok(PostureValue::List(items));
                        }
                        Some(_) => {}
                    }
                    items.push(self.value(false)?);
                    self.skip_space();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(']') => {}
                        None => {
                            return fail(
                                start,
                                self.text.trim_end().len(),
                                "unterminated list: add the closing ]",
                            )
                        }
                        Some(c) => {
                            return fail(
                                self.pos,
                                self.pos + c.len_utf8(),
                                "expected `,` or `]` after a list item",
                            )
                        }
                    }
                }
            }
            _ => {
                let (_, word) = self.take_while(|c| !is_delimiter(c));
                if word.is_empty() {
                    let end = start + self.peek().map_or(0, char::len_utf8);
                    return fail(
                        start,
                        end,
                        "expected a value: a 'string', a number, true or false",
                    );
                }
                match word {
                    "true" => return Ok(PostureValue::Bool(true)),
                    "false" => return Ok(PostureValue::Bool(false)),
                    _ => {}
                }
                let numeric =
                    word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
                match word.parse::<f64>() {
                    Ok(n) if numeric && n.is_finite() => Ok(PostureValue::Num(n)),
                    _ if numeric => fail(
                        start,
                        self.pos,
                        format!("`{word}` is not a number; versions are strings: '{word}'"),
                    ),
                    _ => fail(
                        start,
                        self.pos,
                        format!("unquoted value `{word}`: strings are quoted, e.g. '{word}'"),
                    ),
                }
            }
        }
    }
}

/// An attribute must name its namespace (`node:os`, not `os`).
fn check_namespace(attribute: &str, start: usize) -> Result<(), PostureSyntaxError> {
    let end = start + attribute.len();
    match attribute.split_once(':') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(()),
        _ if NODE_ATTRIBUTES.contains(&attribute) => fail(
            start,
            end,
            format!("attribute `{attribute}` has no namespace: write `node:{attribute}`"),
        ),
        _ => fail(
            start,
            end,
            format!(
                "attribute `{attribute}` has no namespace: attributes are written namespace:name, e.g. `node:os` or `custom:tier`"
            ),
        ),
    }
}

/// Lists go with `IN` / `NOT IN` and only with them; booleans cannot be ordered.
fn check_value_type(
    operator: PostureOperator,
    value: &PostureValue,
    start: usize,
    end: usize,
) -> Result<(), PostureSyntaxError> {
    let is_list = matches!(value, PostureValue::List(_));
    match operator {
        PostureOperator::In | PostureOperator::NotIn if !is_list => fail(
            start,
            end,
            format!(
                "`{}` takes a list, e.g. ['macos', 'linux']",
                operator.as_str()
            ),
        ),
        PostureOperator::In | PostureOperator::NotIn => Ok(()),
        _ if is_list => fail(
            start,
            end,
            format!(
                "a list only goes with IN or NOT IN, not with `{}`",
                operator.as_str()
            ),
        ),
        op if op.is_ordering() && matches!(value, PostureValue::Bool(_)) => fail(
            start,
            end,
            format!(
                "booleans have no order: compare them with == or !=, not `{}`",
                op.as_str()
            ),
        ),
        _ => Ok(()),
    }
}

impl PostureCondition {
    /// True if a device whose attribute has value `attribute` (`None`: not set) satisfies the
    /// condition. Fail closed: an unset attribute satisfies only `NOT SET`; values of different
    /// types are never equal, never ordered, and `!=` / `NOT IN` need a value to compare.
    pub fn holds(&self, attribute: Option<&serde_json::Value>) -> bool {
        use serde_json::Value;
        let attribute = attribute.filter(|v| !v.is_null());
        let Some(actual) = attribute else {
            return self.operator == PostureOperator::NotSet;
        };
        let scalar = matches!(actual, Value::String(_) | Value::Number(_) | Value::Bool(_));
        let value = self.value.as_ref();
        match self.operator {
            PostureOperator::IsSet => true,
            PostureOperator::NotSet => false,
            PostureOperator::IsTrue => actual == &Value::Bool(true),
            PostureOperator::Eq => value.is_some_and(|v| equals(actual, v)),
            PostureOperator::Ne => scalar && value.is_some_and(|v| !equals(actual, v)),
            PostureOperator::In => list(value).iter().any(|v| equals(actual, v)),
            PostureOperator::NotIn => {
                scalar && value.is_some() && !list(value).iter().any(|v| equals(actual, v))
            }
            op => {
                let Some(ordering) = value.and_then(|v| compare(actual, v)) else {
                    return false;
                };
                match op {
                    PostureOperator::Lt => ordering == Ordering::Less,
                    PostureOperator::Le => ordering != Ordering::Greater,
                    PostureOperator::Gt => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }
            }
        }
    }
}

fn list(value: Option<&PostureValue>) -> &[PostureValue] {
    match value {
        Some(PostureValue::List(items)) => items,
        _ => &[],
    }
}

/// Same type and same value.
fn equals(actual: &serde_json::Value, expected: &PostureValue) -> bool {
    use serde_json::Value;
    match (actual, expected) {
        (Value::String(a), PostureValue::Str(b)) => a == b,
        (Value::Number(a), PostureValue::Num(b)) => a.as_f64() == Some(*b),
        (Value::Bool(a), PostureValue::Bool(b)) => a == b,
        _ => false,
    }
}

/// Numbers by value, strings as versions (`1.60` > `1.9`); `None` when not comparable.
fn compare(actual: &serde_json::Value, expected: &PostureValue) -> Option<Ordering> {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Number(a), PostureValue::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::String(a), PostureValue::Str(b)) => compare_versions(a, b),
        _ => None,
    }
}

/// Compare two versions component by component, numerically (`1.60` > `1.9`, `1.60` ==
/// `1.60.0`). A leading `v` and a suffix after `-` or `+` (`1.80.0-t1a2b3c`) are ignored.
/// `None` when either is not a version.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (version_parts(a)?, version_parts(b)?);
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    Some(
        (0..len)
            .map(|i| at(&a, i).cmp(&at(&b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
    )
}

fn version_parts(text: &str) -> Option<Vec<u64>> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next().unwrap_or("");
    if core.is_empty() {
        return None;
    }
    core.split('.')
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<u64>().ok()
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
