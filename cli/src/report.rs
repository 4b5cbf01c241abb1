//! Showing diagnostics: miette's graphical rendering for people, a stable JSON shape for
//! programs (and `check.py`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use aclc_policy::text::escape;
use aclc_policy::{Diagnostic, Source};
use clap::ValueEnum;
use miette::{GraphicalReportHandler, GraphicalTheme};
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: rendered diagnostics (source line, underline, help) and readable text.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// True when colour should be used on a stream: it is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
pub(crate) fn use_colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Renders diagnostics for a terminal or a log.
pub(crate) struct HumanRenderer {
    handler: GraphicalReportHandler,
}

impl HumanRenderer {
    /// A renderer, in colour or not.
    pub(crate) fn new(colour: bool) -> HumanRenderer {
        let theme = if colour {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        HumanRenderer {
            handler: GraphicalReportHandler::new_themed(theme).with_links(false),
        }
    }

    /// One diagnostic: `file:line:column`, the source line, the span underlined, the help.
    pub(crate) fn render(&self, diagnostic: &Diagnostic, source: &Source) -> String {
        let report = diagnostic.report(source);
        let mut out = String::new();
        if self
            .handler
            .render_report(&mut out, report.as_ref())
            .is_err()
        {
            // Rendering into a String cannot fail in practice; fall back to the bare facts.
            let at = source.line_col(diagnostic.span.start as usize);
            out = format!(
                "{}: {}:{}:{}: {}\n",
                diagnostic.severity.as_str(),
                escape(source.name()),
                at.line,
                at.column,
                escape(&diagnostic.message)
            );
        }
        out
    }
}

/// Default of `--max-diagnostics`: enough to fix a file by, little enough to read.
pub(crate) const DEFAULT_MAX_DIAGNOSTICS: usize = 100;

/// The diagnostics human output renders when at most `max` may be (0: all): errors first,
/// then warnings, each in source order, and the selection shown in source order; and how
/// many are left out.
pub(crate) fn capped(diagnostics: &[Diagnostic], max: usize) -> (Vec<&Diagnostic>, usize) {
    if max == 0 || diagnostics.len() <= max {
        return (diagnostics.iter().collect(), 0);
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = max.saturating_sub(errors);
    let (mut e, mut w) = (0, 0);
    let shown: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| {
            let (taken, quota) = if d.is_error() {
                (&mut e, max)
            } else {
                (&mut w, warnings)
            };
            *taken += 1;
            *taken <= quota
        })
        .collect();
    let hidden = diagnostics.len() - shown.len();
    (shown, hidden)
}

/// `policy.hujson: 2900 more diagnostics not shown (--max-diagnostics 0 shows all)`.
pub(crate) fn hidden_line(name: &str, hidden: usize) -> String {
    format!(
        "{}: … and {hidden} more diagnostic{} not shown (--max-diagnostics 0 shows all)",
        escape(name),
        if hidden == 1 { "" } else { "s" }
    )
}

/// `policy.hujson: 2 errors, 1 warning`, or `policy.hujson: valid` (`valid, 1 warning`).
pub(crate) fn summary(name: &str, diagnostics: &[Diagnostic]) -> String {
    let name = escape(name);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("{name}: valid"),
        (0, w) => format!("{name}: valid, {}", plural(w, "warning")),
        (e, 0) => format!("{name}: {}", plural(e, "error")),
        (e, w) => format!("{name}: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// A diagnostic as JSON: the library's located form (its serde form is the JSON contract).
pub(crate) type JsonDiagnostic = aclc_policy::diag::Located;

/// The `error` object of a refused policy as JSON: the message and every diagnostic.
pub(crate) use aclc_api::shape::JsonError;

/// Set once a write to standard output failed: the command then exits 1 ([`exit_status`]).
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Write `text` to standard output. A failure (a full disk) is reported once on stderr and
/// makes the command exit 1; `println!` would panic instead. A closed pipe (`| head`) is
/// not: the reader took what it wanted, and the exit status stays the verdict's, as in the
/// commands that stream their output.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return;
        }
        if !STDOUT_FAILED.swap(true, Ordering::Relaxed) {
            eprintln!("error: cannot write the output: {e}");
        }
    }
}

/// The exit status `status`, or 1 ([`crate::EXIT_USAGE`]) when a write to standard output
/// failed.
pub(crate) fn exit_status(status: u8) -> u8 {
    match STDOUT_FAILED.load(Ordering::Relaxed) {
        true => crate::EXIT_USAGE,
        false => status,
    }
}

/// Print one JSON document on stdout.
pub(crate) fn print_json(document: &impl Serialize) {
    match serde_json::to_string(document) {
        Ok(text) => out(&format!("{text}\n")),
        // Only plain strings and numbers are serialised; this cannot fail.
        Err(e) => eprintln!("error: cannot write JSON output (this is a bug): {e}"),
    }
}

/// Render the diagnostics on stderr, for a person: at most `max` (0: all, see [`capped`]),
/// then how many were left out.
pub(crate) fn eprint_diagnostics(diagnostics: &[Diagnostic], source: &Source, max: usize) {
    let stderr = std::io::stderr();
    let renderer = HumanRenderer::new(use_colour(&stderr));
    let mut out = std::io::BufWriter::new(stderr.lock());
    let (shown, hidden) = capped(diagnostics, max);
    // Write errors (a closed pipe) are not worth a different exit status.
    for diagnostic in shown {
        let _ = write!(out, "{}", renderer.render(diagnostic, source));
    }
    if hidden > 0 {
        let _ = writeln!(out, "{}", hidden_line(source.name(), hidden));
    }
}

/// Report an input that could not be read at all: a message on stderr and, for JSON output,
/// `{"valid": false, "error": {"message": ...}}` on stdout. Returns the exit status.
pub(crate) fn input_error(format: Format, message: &str) -> u8 {
    eprintln!("error: {}", escape(message));
    if format == Format::Json {
        out(&format!(
            "{}\n",
            serde_json::json!({"valid": false, "error": {"message": message}})
        ));
    }
    crate::EXIT_USAGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use aclc_policy::Span;

    #[test]
    fn capping_keeps_errors_first_and_source_order() {
        let at = |i: usize| Span::new(i, i + 1);
        let diagnostics: Vec<Diagnostic> = (0..10)
            .map(|i| {
                if i == 7 || i == 9 {
                    Diagnostic::error(aclc_policy::Code::Syntax, at(i), format!("e{i}"))
                } else {
                    Diagnostic::warning(aclc_policy::Code::UnusedGroup, at(i), format!("w{i}"))
                }
            })
            .collect();
        let messages = |max| {
            let (shown, hidden) = capped(&diagnostics, max);
            let shown: Vec<&str> = shown.iter().map(|d| d.message.as_str()).collect();
            (shown.join(" "), hidden)
        };
        assert_eq!(messages(3), ("w0 e7 e9".to_string(), 7));
        assert_eq!(messages(1), ("e7".to_string(), 9));
        assert_eq!(messages(0).1, 0);
        assert_eq!(messages(10).1, 0);
    }
}
