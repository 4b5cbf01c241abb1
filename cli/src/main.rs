//! The `aclc` command line: parses the arguments and hands over to one module per subcommand.

mod check;
mod ci;
mod compile;
mod diff;
mod explain;
mod fmt;
mod input;
mod report;
mod schema;
mod test;
mod unified;

use std::process::ExitCode;

/// mimalloc, not the system allocator: a compile of a large tailnet allocates and frees
/// millions of small strings and lists, which it does a quarter faster (ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Exit status: success (the policy is valid; warnings allowed).
const EXIT_OK: u8 = 0;
/// Exit status: a usage error, an unreadable file or a malformed inventory.
const EXIT_USAGE: u8 = 1;
/// Exit status: a policy is invalid.
const EXIT_INVALID: u8 = 2;

/// Check Tailscale policy files, run their tests and compile them into what each node receives.
#[derive(Debug, Parser)]
#[command(name = "aclc", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check policy files and report every problem with its position.
    ///
    /// Exit status: 0 valid (warnings allowed), 2 invalid, 1 usage error or unreadable input.
    Check(check::CheckArgs),
    /// Compile a policy against a node inventory: each node's packet filter, routes and peers.
    ///
    /// Exit status: 0 compiled, 2 policy refused, 1 usage error or unreadable input.
    Compile(compile::CompileArgs),
    /// Run a policy's `tests` and `sshTests` against a node inventory and report every
    /// assertion.
    ///
    /// Exit status: 0 all passed, 3 some failed, 2 policy invalid, 1 usage error or
    /// unreadable input.
    Test(test::TestArgs),
    /// Explain whether the policy allows traffic from SRC to DST:PORT (or, with --ssh, a
    /// login as LOCALUSER): the allowing rules, or on a denial the nearest misses.
    ///
    /// Exit status: 0 allowed, 3 denied, 2 policy invalid, 1 usage error, unreadable input or
    /// an endpoint that names nothing.
    Explain(explain::ExplainArgs),
    /// Compare two policies: the access gained and lost (with --inventory, node by node) and
    /// the rules and definitions added, removed and changed.
    ///
    /// Exit status: 0 compared (with --exit-code: nothing changed), 4 with --exit-code:
    /// access changed, 2 a policy is invalid, 1 usage error or unreadable input.
    Diff(diff::DiffArgs),
    /// Format policy files exactly as Tailscale's `hujsonfmt` does; `-` or no file formats
    /// standard input to standard output.
    ///
    /// Exit status: 0 done (or, with --check, all formatted), 4 with --check: some file is not
    /// formatted, 2 syntax error, 1 usage error, unreadable input or a file not rewritten.
    Fmt(fmt::FmtArgs),
    /// Print the JSON Schema (draft 2020-12) of the policy file or of the node inventory, for
    /// editors (completion, hover text).
    ///
    /// Exit status: 0 printed, 1 usage error or output not written.
    Schema(schema::SchemaArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            // clap exits 2 on usage errors; 2 means "invalid policy" here, so map to 1.
            let code = match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_USAGE,
            };
            // Nothing useful to do if printing the message fails.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => ExitCode::from(report::exit_status(check::run(&args))),
        Command::Compile(args) => ExitCode::from(report::exit_status(compile::run(&args))),
        Command::Test(args) => ExitCode::from(report::exit_status(test::run(&args))),
        Command::Explain(args) => ExitCode::from(report::exit_status(explain::run(&args))),
        Command::Diff(args) => ExitCode::from(report::exit_status(diff::run(&args))),
        Command::Fmt(args) => ExitCode::from(report::exit_status(fmt::run(&args))),
        Command::Schema(args) => ExitCode::from(report::exit_status(schema::run(&args))),
    }
}
