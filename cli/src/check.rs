//! `aclc check`: validate policy files and report every problem, for people or as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

// What checking one policy found: the embedding API checks with the same code.
use aclc_api::shape::CheckResult as FileResult;
use aclc_compiler::Inventory;
use aclc_policy::{Diagnostic, Options, Source};
use serde::Serialize;

use crate::input::{is_stdin, read_inventory, read_policy, InputLimits, PolicyFile, STDIN_TWICE};
use crate::report::{
    capped, hidden_line, input_error, print_json, summary, use_colour, Format, HumanRenderer,
    JsonDiagnostic, DEFAULT_MAX_DIAGNOSTICS,
};
use crate::{EXIT_INVALID, EXIT_OK};

/// Arguments of `aclc check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Policy files to check (HuJSON or JSON); `-` reads standard input.
    #[arg(required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
    /// Node inventory (JSON) whose users and tailnet domain the policy is checked against;
    /// with it, the policy's `tests` and `sshTests` run too (a failing one refuses the
    /// policy, as Tailscale does). Without it, only the test failures no tailnet can change
    /// are reported (a malformed test, an endpoint naming an undefined group, tag or host, a
    /// `deny` the rules break between addresses the test writes). `-` reads standard input.
    #[arg(long, value_name = "INVENTORY")]
    inventory: Option<PathBuf>,
    /// Output format: `human` renders diagnostics on stderr, `json` prints one document on
    /// stdout, `github` prints GitHub workflow commands (annotations) on stdout, `sarif`
    /// prints a SARIF 2.1.0 log (for code-scanning upload) on stdout.
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    format: CheckFormat,
    /// Human output renders at most this many diagnostics per file, errors first (0: all);
    /// the summary still counts every one. JSON output always lists them all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DIAGNOSTICS)]
    max_diagnostics: usize,
    #[command(flatten)]
    limits: InputLimits,
}

/// The output formats of `aclc check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CheckFormat {
    /// Rendered diagnostics on stderr.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub workflow commands on stdout (`::error file=...::message`).
    Github,
    /// A SARIF 2.1.0 log on stdout.
    Sarif,
}

impl CheckFormat {
    /// How unreadable input is reported: as JSON for `json`, on stderr otherwise (and, for
    /// `github`, also as a workflow command, see [`input_failure`]).
    fn base(self) -> Format {
        match self {
            CheckFormat::Json => Format::Json,
            _ => Format::Human,
        }
    }
}

/// Report an input that cannot be read, in `format`; returns the exit status.
fn input_failure(format: CheckFormat, message: &str) -> u8 {
    if format == CheckFormat::Github {
        crate::report::out(&format!(
            "::error title=aclc::{}\n",
            crate::ci::escape_data(message)
        ));
    }
    input_error(format.base(), message)
}

/// Run `aclc check`; returns the exit status.
pub(crate) fn run(args: &CheckArgs) -> u8 {
    let stdin_uses = args
        .policies
        .iter()
        .filter(|p| p.as_path() == Path::new("-"))
        .count();
    if stdin_uses > 1 {
        return input_failure(args.format, "standard input (`-`) can be checked only once");
    }
    if stdin_uses > 0 && args.inventory.as_deref().is_some_and(is_stdin) {
        return input_failure(args.format, STDIN_TWICE);
    }
    let mut options = Options {
        limits: args.limits.policy_limits(),
        ..Options::default()
    };
    let mut inventory = None;
    if let Some(path) = &args.inventory {
        match read_inventory(path, &args.limits) {
            Ok(found) => {
                options.context = found.policy_context();
                inventory = Some(found);
            }
            Err(message) => return input_failure(args.format, &message),
        }
    }
    let mut files = Vec::with_capacity(args.policies.len());
    for path in &args.policies {
        match read_policy(path, &args.limits.policy) {
            Ok(file) => files.push(file),
            Err(message) => return input_failure(args.format, &message),
        }
    }
    let results: Vec<FileResult> = files
        .iter()
        .map(|f| check_file(f, &options, inventory.as_ref()))
        .collect();
    match args.format {
        CheckFormat::Human => print_human(&results, args.max_diagnostics),
        CheckFormat::Json => print_json_results(&results),
        CheckFormat::Github => {
            let located: Vec<JsonDiagnostic> = results.iter().flat_map(json_diagnostics).collect();
            crate::report::out(&crate::ci::github_commands(&located));
        }
        CheckFormat::Sarif => {
            let files: Vec<(&Source, &[Diagnostic])> = results
                .iter()
                .map(|r| (&r.source, r.diagnostics.as_slice()))
                .collect();
            print_json(&crate::ci::sarif(&files));
        }
    }
    if results.iter().all(|r| r.valid) {
        EXIT_OK
    } else {
        EXIT_INVALID
    }
}

fn check_file(file: &PolicyFile, options: &Options, inventory: Option<&Inventory>) -> FileResult {
    aclc_api::shape::check_policy(&file.name, &file.bytes, options, inventory)
}

fn print_human(results: &[FileResult], max_diagnostics: usize) {
    let stderr = std::io::stderr();
    let renderer = HumanRenderer::new(use_colour(&stderr));
    let mut out = std::io::BufWriter::new(stderr.lock());
    // Write errors (a closed pipe) are not worth a different exit status.
    for result in results {
        let (shown, hidden) = capped(&result.diagnostics, max_diagnostics);
        for diagnostic in shown {
            let _ = writeln!(out, "{}", renderer.render(diagnostic, &result.source));
        }
        if hidden > 0 {
            let _ = writeln!(out, "{}", hidden_line(result.source.name(), hidden));
        }
        let _ = writeln!(
            out,
            "{}",
            summary(result.source.name(), &result.diagnostics)
        );
    }
}

/// The JSON of one file.
#[derive(Serialize)]
struct JsonFile {
    file: String,
    valid: bool,
    diagnostics: Vec<JsonDiagnostic>,
}

/// The JSON of several files: per file, and every diagnostic flattened.
#[derive(Serialize)]
struct JsonMany {
    valid: bool,
    files: Vec<JsonFile>,
    diagnostics: Vec<JsonDiagnostic>,
}

fn json_diagnostics(result: &FileResult) -> Vec<JsonDiagnostic> {
    result.located()
}

fn print_json_results(results: &[FileResult]) {
    let valid = results.iter().all(|r| r.valid);
    match results {
        [one] => print_json(&one.to_json()),
        many => print_json(&JsonMany {
            valid,
            files: many
                .iter()
                .map(|r| JsonFile {
                    file: r.source.name().to_string(),
                    valid: r.valid,
                    diagnostics: json_diagnostics(r),
                })
                .collect(),
            diagnostics: many.iter().flat_map(json_diagnostics).collect(),
        }),
    }
}
