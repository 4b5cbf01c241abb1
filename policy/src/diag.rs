//! Diagnostics: one spanned, coded message per problem, so every error can be reported at once.

use crate::code::Code;
use crate::snippet::Snippet;
use crate::source::{Source, Span};
use crate::text::escape_at_most;
use serde::{Deserialize, Serialize};

/// Characters of a message or help line shown in a rendered report (they quote the policy,
/// which may hold megabyte-long names); JSON output has them whole.
const TEXT_CHARS: usize = 2000;
/// Characters of a label shown in a rendered report.
const LABEL_CHARS: usize = 200;

/// How bad a diagnostic is (`"error"` / `"warning"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Tailscale would accept the policy, but it is probably a mistake.
    Warning,
    /// Tailscale would refuse the policy.
    Error,
}

impl Severity {
    /// `"error"` or `"warning"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A secondary place a diagnostic points at (for example the first of two duplicate keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there.
    pub message: String,
}

/// One problem found in a policy.
///
/// `message` is Tailscale's own text where Tailscale has one, so it can be searched for;
/// `code` is a stable key (`aclc::undefined_tag`); `help` says how to fix it. Its serde form
/// keeps the byte span; [`Diagnostic::locate`] gives the form with lines and columns that
/// `aclc --format json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code (its text form `aclc::<snake_case>`).
    pub code: Code,
    /// One line, lowercase start, no final period.
    pub message: String,
    /// Where the problem is.
    pub span: Span,
    /// What to underline the primary span with (may be empty).
    pub label: String,
    /// More places to point at.
    pub related: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            related: Vec::new(),
            help: None,
        }
    }

    /// A warning.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// With a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// With a label on the primary span.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// With a secondary place.
    pub fn with_related(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.related.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// This diagnostic placed in `source` by lines and columns.
    pub fn locate(&self, source: &Source) -> Located {
        let start = source.line_col(self.span.start as usize);
        let end = source.line_col(self.span.end as usize);
        Located {
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            help: self.help.clone(),
            file: source.name().to_string(),
            line: start.line,
            column: start.column,
            end_line: end.line,
            end_column: end.column,
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A `miette` report of this diagnostic over `source`, for human output.
    ///
    /// Safe for any input: the excerpt is a [`Snippet`] (a few lines, long lines cut to a
    /// window around the span), and control and bidi characters in the excerpt, the file name,
    /// the message, the labels and the help are shown escaped (`\u{1b}`). Costs O(log lines +
    /// labels + window), never a scan of the whole text.
    pub fn report(&self, source: &Source) -> miette::Report {
        let spans: Vec<Span> = std::iter::once(self.span)
            .chain(self.related.iter().map(|l| l.span))
            .collect();
        let (snippet, moved) = Snippet::new(source, &spans);
        let mut moved = moved.into_iter();
        let span = moved.next().unwrap_or_default();
        let related = self
            .related
            .iter()
            .zip(moved)
            .map(|(label, span)| Label {
                span,
                message: escape_at_most(&label.message, LABEL_CHARS).into_owned(),
            })
            .collect();
        let diag = Diagnostic {
            severity: self.severity,
            code: self.code,
            message: escape_at_most(&self.message, TEXT_CHARS).into_owned(),
            span,
            label: escape_at_most(&self.label, LABEL_CHARS).into_owned(),
            related,
            help: self
                .help
                .as_deref()
                .map(|h| escape_at_most(h, TEXT_CHARS).into_owned()),
        };
        miette::Report::new(Rendered {
            diag,
            source: snippet,
        })
    }
}

/// A diagnostic with its place as lines and columns: what `aclc --format json` prints for each
/// diagnostic. Lines and columns are 1-based, columns count characters, and the end is the
/// position just past the span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// The message.
    pub message: String,
    /// How to fix it (`null` when there is no help).
    pub help: Option<String>,
    /// The policy's name.
    pub file: String,
    /// Line of the start.
    pub line: usize,
    /// Column of the start.
    pub column: usize,
    /// Line just past the end.
    pub end_line: usize,
    /// Column just past the end.
    pub end_column: usize,
}

/// Every diagnostic of one policy, in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True if any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// Sort by position (errors before warnings at the same place), keeping the order of equals.
    pub fn sort(&mut self) {
        self.0
            .sort_by_key(|d| (d.span.start, std::cmp::Reverse(d.severity), d.span.end));
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut errors = self.errors();
        match errors.next() {
            None => write!(f, "no errors"),
            Some(first) => {
                write!(f, "{}", first.message)?;
                let more = errors.count();
                if more > 0 {
                    write!(f, " (+{more} more)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Diagnostics {}

/// A diagnostic bound to its excerpt, as `miette` wants it (spans are into the excerpt).
#[derive(Debug)]
struct Rendered {
    diag: Diagnostic,
    source: Snippet,
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let primary = miette::LabeledSpan::new_primary_with_span(
            (!self.diag.label.is_empty()).then(|| self.diag.label.clone()),
            self.diag.span,
        );
        let related = self
            .diag
            .related
            .iter()
            .map(|l| miette::LabeledSpan::new_with_span(Some(l.message.clone()), l.span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}
