//! `aclc explain`: whether the policy allows one flow (or, with `--ssh`, one SSH login), by
//! which rules, and on a denial the nearest misses. Judged by the library's `explain`, the
//! code `aclc test` runs, except where the nodes' filters let traffic through differently
//! from how Tailscale's tests judge it (a `via` grant, ICMP, a protocol without ports).

use std::io::Write as _;
use std::path::PathBuf;

use aclc_api::shape::rule_text;
use aclc_compiler::policytest::{explain, explain_ssh, Explanation, NetworkQuery};
use aclc_compiler::try_compile_with_options;
use aclc_policy::text::escape;
use aclc_policy::{Diagnostic, Source, Span};
use serde::Serialize;

use crate::input::{read_inputs, InputLimits};
use crate::report::{
    eprint_diagnostics, input_error, print_json, Format, JsonError, DEFAULT_MAX_DIAGNOSTICS,
};
use crate::test::EXIT_TESTS_FAILED;
use crate::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Nearest misses human output lists by default: a denial under a policy of thousands of
/// rules listed every one of them.
const DEFAULT_MAX_MISSES: usize = 10;

/// Arguments of `aclc explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Policy file (HuJSON or JSON); `-` reads standard input.
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
    /// The source: a user, group, tag, host, IP address or autogroup (as a test's `src`), or
    /// an inventory node name.
    #[arg(value_name = "SRC")]
    src: String,
    /// The destination: `DST:PORT` (a port is required for TCP, UDP and SCTP, not for ICMP,
    /// GRE or other protocols without ports); with `--ssh`, a device (no port). DST is
    /// anything a test's destination accepts, or an inventory node name.
    #[arg(value_name = "DST[:PORT]")]
    dst: String,
    /// With `--ssh`: the login (local user) asked for: one account (`*` and `=` are refused).
    #[arg(value_name = "LOCALUSER")]
    user: Option<String>,
    /// Node inventory (JSON); `-` reads standard input.
    #[arg(long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Explain an SSH login as LOCALUSER instead of network traffic.
    #[arg(long)]
    ssh: bool,
    /// Protocol (as a test's `proto`: `tcp`, `udp`, `icmp`, a number ...); default TCP or UDP.
    #[arg(long, value_name = "PROTO", conflicts_with = "ssh")]
    proto: Option<String>,
    /// Human output renders at most this many diagnostics of a refused policy (0: all).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DIAGNOSTICS)]
    max_diagnostics: usize,
    /// Human output lists at most this many nearest misses of a denial, then how many more
    /// (0: all; JSON lists all).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_MISSES)]
    max_misses: usize,
    #[command(flatten)]
    limits: InputLimits,
    #[command(flatten)]
    exit: crate::compile::ExitNodeArgs,
    /// Output format, on stdout: `human` (a verdict line, then the rules) or `json`.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Run `aclc explain`; returns the exit status (0 allowed, 3 denied, 2 invalid policy, 1
/// usage or I/O error, or endpoints a test could not name).
pub(crate) fn run(args: &ExplainArgs) -> u8 {
    let user = match (args.ssh, args.user.as_deref()) {
        (true, Some(user)) => Some(user),
        (false, None) => None,
        (true, None) => return input_error(args.format, "--ssh needs LOCALUSER: SRC DST USER"),
        (false, Some(_)) => {
            return input_error(
                args.format,
                "LOCALUSER is only for --ssh; network traffic is SRC DST:PORT",
            )
        }
    };
    let (inventory, source, checked) = match read_inputs(
        &args.policy,
        &args.inventory,
        &args.limits,
        args.format,
        |source, found| invalid(args.format, args.max_diagnostics, source, found),
    ) {
        Ok(inputs) => inputs,
        Err(status) => return status,
    };
    let compiled =
        match try_compile_with_options(&checked.policy, &inventory, &args.exit.compile_options()) {
            Ok(compiled) => compiled,
            Err(error) => {
                return invalid(
                    args.format,
                    args.max_diagnostics,
                    &source,
                    &[error.to_diagnostic()],
                )
            }
        };
    let answer = match user {
        Some(user) => explain_ssh(&checked.policy, &compiled, &args.src, &args.dst, user),
        None => explain(
            &checked.policy,
            &compiled,
            &NetworkQuery {
                src: &args.src,
                dst: &args.dst,
                proto: args.proto.as_deref(),
                src_posture_attrs: None,
            },
        ),
    };
    let explanation = match answer {
        Ok(explanation) => explanation,
        Err(error) => return input_error(args.format, &error.to_string()),
    };
    let written = match args.format {
        Format::Human => write_human(&explanation, &source, args.max_misses),
        Format::Json => write_json(&explanation, &source),
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
            return EXIT_USAGE;
        }
    }
    if explanation.allowed() {
        EXIT_OK
    } else {
        EXIT_TESTS_FAILED
    }
}

/// Report an invalid policy: rendered diagnostics on stderr, or the JSON document.
fn invalid(format: Format, max: usize, source: &Source, diagnostics: &[Diagnostic]) -> u8 {
    match format {
        Format::Human => {
            eprint_diagnostics(diagnostics, source, max);
            eprintln!(
                "{}: policy refused, nothing explained",
                escape(source.name())
            );
        }
        Format::Json => {
            let message = aclc_api::shape::first_error_message(diagnostics);
            print_json(&JsonInvalid {
                allowed: false,
                error: JsonError::new(message, diagnostics, source),
            });
        }
    }
    EXIT_INVALID
}

#[derive(Serialize)]
struct JsonInvalid {
    allowed: bool,
    error: JsonError,
}

/// `allowed: REASON` then `allowed by FILE:LINE: RULE` lines (and `also allowed by` lines for
/// the other rules that let it through); or `denied: REASON`,
/// `nearest misses:` and two lines per miss (where and the rule, then why), at most `max`
/// (0: all) and then how many more.
fn write_human(e: &Explanation, source: &Source, max: usize) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let name = escape(source.name());
    let line = |span: Span| source.line_col(span.start as usize).line;
    if e.allowed() {
        writeln!(out, "allowed: {}", escape(&e.reason))?;
        for &span in e.verdict.rules() {
            writeln!(
                out,
                "allowed by {name}:{}: {}",
                line(span),
                escape(&rule_text(source, span))
            )?;
        }
        // Rules that let it through as well: an author removing the rules above, to take
        // the access away, would keep it.
        for &span in &e.also {
            writeln!(
                out,
                "also allowed by {name}:{}: {}",
                line(span),
                escape(&rule_text(source, span))
            )?;
        }
        if !e.also.is_empty() {
            let which = match e.verdict.rules().len() {
                1 => "the rule that allows it",
                _ => "the rules that allow it",
            };
            writeln!(
                out,
                "note: removing {which} would not deny it: the rules marked \"also allowed \
                 by\" let it through as well"
            )?;
        }
    } else {
        writeln!(out, "denied: {}", escape(&e.reason))?;
        if e.misses.is_empty() {
            writeln!(
                out,
                "nearest misses: none (no rule reaches the destination)"
            )?;
        } else {
            writeln!(out, "nearest misses:")?;
        }
        let shown = match max {
            0 => e.misses.len(),
            max => max.min(e.misses.len()),
        };
        for miss in e.misses.iter().take(shown) {
            writeln!(
                out,
                "  {name}:{}: {}",
                line(miss.span),
                escape(&rule_text(source, miss.span))
            )?;
            writeln!(out, "    {}", escape(&miss.why))?;
        }
        if shown < e.misses.len() {
            writeln!(
                out,
                "  ... and {} more (--max-misses 0 lists all)",
                e.misses.len() - shown
            )?;
        }
    }
    // What the verdict cannot show (a closed TCP port 22 under an allowed login, a disabled
    // IPv4 address), beside it.
    for note in &e.notes {
        writeln!(out, "note: {}", escape(note))?;
    }
    out.flush()
}

fn write_json(e: &Explanation, source: &Source) -> std::io::Result<()> {
    let doc = aclc_api::shape::ExplanationJson::new(e, source);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer(&mut out, &doc)?;
    writeln!(out)?;
    out.flush()
}
