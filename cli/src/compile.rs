//! `aclc compile`: compile a policy against a node inventory and print what each node
//! receives (packet filter, routes, peers), as the corpus' JSON or as a table for people.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use aclc_compiler::wire::{FilterRule, SshRule};
use aclc_compiler::{
    try_compile_with_options, CompileOptions, ExitNodeFilters, NodeView, DEFAULT_CONTROL_URL,
};
use aclc_policy::text::escape;
use aclc_policy::{Diagnostic, Source};
use serde::Serialize;

use crate::input::{read_inputs, InputLimits};
use crate::report::{
    eprint_diagnostics, input_error, print_json, Format, JsonError, DEFAULT_MAX_DIAGNOSTICS,
};
use crate::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Arguments of `aclc compile`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompileArgs {
    /// Policy file (HuJSON or JSON); `-` reads standard input.
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
    /// Node inventory (JSON): users, nodes, registration order, tailnet; `-` reads standard
    /// input.
    #[arg(long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Human output renders at most this many diagnostics of a refused policy, errors first
    /// (0: all). JSON output always lists them all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DIAGNOSTICS)]
    max_diagnostics: usize,
    #[command(flatten)]
    limits: InputLimits,
    /// Only this node (repeatable); default: every node.
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Output format: `json` prints `{"nodes": {...}}` on stdout, `human` a table per node.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// The control server's URL, the base of the links SSH check-mode rules send clients to.
    #[arg(long, value_name = "URL", default_value = DEFAULT_CONTROL_URL)]
    control_url: String,
    #[command(flatten)]
    exit: ExitNodeArgs,
}

/// `--exit-node-filters`, for every command that compiles.
#[derive(Debug, clap::Args)]
pub(crate) struct ExitNodeArgs {
    /// What an approved exit node's packet filter holds: `all`, every rule's destinations of
    /// the families it exits to (as Tailscale's control server sends it), or `internet`, only
    /// `autogroup:internet` and public prefixes (smaller; admits less than Tailscale). On a
    /// large tailnet `all` can pass the compile's budget.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = ExitFilters::All)]
    exit_node_filters: ExitFilters,
}

impl ExitNodeArgs {
    /// The compile options these flags ask for.
    pub(crate) fn compile_options(&self) -> CompileOptions {
        let mut options = CompileOptions::default();
        options.exit_node_filters = match self.exit_node_filters {
            ExitFilters::All => ExitNodeFilters::AllDestinations,
            ExitFilters::Internet => ExitNodeFilters::InternetOnly,
        };
        options
    }
}

/// `--exit-node-filters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExitFilters {
    /// Every rule's destinations (Tailscale's behaviour).
    All,
    /// Only the internet's.
    Internet,
}

/// `{"error": {"message", "diagnostics"}}`: a refused policy as JSON.
#[derive(Serialize)]
struct JsonRefusal {
    error: JsonError,
}

/// Run `aclc compile`; returns the exit status (0 compiled, 2 policy refused, 1 otherwise).
pub(crate) fn run(args: &CompileArgs) -> u8 {
    let (inventory, source, checked) = match read_inputs(
        &args.policy,
        &args.inventory,
        &args.limits,
        args.format,
        |source, found| refused(args.format, args.max_diagnostics, source, found),
    ) {
        Ok(inputs) => inputs,
        Err(status) => return status,
    };
    if args.format == Format::Human && !checked.warnings.is_empty() {
        let n = checked.warnings.len();
        eprintln!(
            "{}: {n} warning{} (`aclc check` shows them)",
            escape(source.name()),
            plural(n)
        );
    }
    let mut compile_options = args.exit.compile_options();
    compile_options.control_url.clone_from(&args.control_url);
    // A policy the compiler refuses (an IP set it cannot compute, work beyond the budget) is
    // refused like an invalid one, with the place to blame.
    let compiled = match try_compile_with_options(&checked.policy, &inventory, &compile_options) {
        Ok(compiled) => compiled,
        Err(error) => {
            return refused(
                args.format,
                args.max_diagnostics,
                &source,
                &[error.to_diagnostic()],
            )
        }
    };
    // Tailscale refuses a policy whose own assertions fail.
    let report = aclc_compiler::run_tests(&checked.policy, &compiled);
    if !report.passed() {
        return tests_refused(args.format, &source, &report);
    }
    if args.format == Format::Human {
        for result in report.warnings() {
            let at = source.line_col(result.span.start as usize);
            if let Some(warning) = &result.warning {
                eprintln!(
                    "{}:{}: warning: {}",
                    escape(source.name()),
                    at.line,
                    escape(warning)
                );
            }
        }
    }
    let names: Vec<String> = if args.nodes.is_empty() {
        compiled.node_names().map(String::from).collect()
    } else {
        // A node asked for twice is written once: a JSON object holds a name once.
        let mut seen = std::collections::HashSet::new();
        args.nodes
            .iter()
            .filter(|n| seen.insert(n.as_str()))
            .cloned()
            .collect()
    };
    if let Some(unknown) = names.iter().find(|n| !compiled.has_node(n)) {
        let message = format!("unknown node \"{unknown}\" (not in the inventory)");
        return input_error(args.format, &message);
    }
    // Each node is computed, printed and dropped in turn: a whole tailnet's output can be
    // gigabytes (every node lists its peers), so it is never held in memory at once.
    let views = names.iter().filter_map(|name| compiled.node(name));
    let written = match args.format {
        Format::Json => write_json(views),
        Format::Human => write_human(views),
    };
    if let Err(e) = written {
        // A closed pipe (`| head`) is not worth a complaint.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
            return EXIT_USAGE;
        }
    }
    EXIT_OK
}

/// Write `{"nodes": {name: node, ...}}` one node at a time.
fn write_json<'a>(views: impl Iterator<Item = NodeView<'a>>) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    out.write_all(b"{\"nodes\":{")?;
    for (i, view) in views.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, view.name())?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut out, &view.to_wire())?;
    }
    out.write_all(b"}}\n")?;
    out.flush()
}

/// Write a readable block per node.
fn write_human<'a>(views: impl Iterator<Item = NodeView<'a>>) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for view in views {
        let mut text = String::new();
        human_node(&mut text, &view);
        out.write_all(text.as_bytes())?;
    }
    out.flush()
}

/// Report a refused policy: rendered diagnostics, or the JSON error document.
fn refused(format: Format, max: usize, source: &Source, diagnostics: &[Diagnostic]) -> u8 {
    match format {
        Format::Human => {
            eprint_diagnostics(diagnostics, source, max);
            eprintln!(
                "{}: policy refused, nothing compiled",
                escape(source.name())
            );
        }
        Format::Json => {
            let message = aclc_api::shape::compile_refusal_message(diagnostics);
            print_json(&JsonRefusal {
                error: JsonError::new(message, diagnostics, source),
            });
        }
    }
    EXIT_INVALID
}

/// Report a policy refused because its assertions failed: `test(s) failed` and one line per
/// failed assertion (human: on stderr; JSON: the message of the error document).
fn tests_refused(format: Format, source: &Source, report: &aclc_compiler::TestReport) -> u8 {
    let message = report.refusal_message(source);
    match format {
        Format::Human => {
            // One line per failed assertion: each line escaped, the line breaks kept.
            for line in message.lines() {
                eprintln!("{}", escape(line));
            }
            eprintln!(
                "{}: policy refused, nothing compiled",
                escape(source.name())
            );
        }
        Format::Json => {
            let diagnostics = crate::test::failure_diagnostics(report, source);
            print_json(&JsonRefusal {
                error: JsonError::new(message, &diagnostics, source),
            });
        }
    }
    EXIT_INVALID
}

/// One node as a readable block.
fn human_node(out: &mut String, view: &NodeView<'_>) {
    let addrs = view.addrs();
    let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "node {}  {}", escape(view.name()), shown.join("  "));
    let served: Vec<String> = view
        .allowed_ips()
        .iter()
        .skip(addrs.len())
        .map(ToString::to_string)
        .collect();
    if !served.is_empty() {
        let primary: Vec<String> = view
            .primary_routes()
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "  routes:  {} (primary: {})",
            served.join(", "),
            list_or_none(&primary)
        );
    }
    let rules = view.packet_filter_rules();
    let _ = writeln!(
        out,
        "  packet filter: {} rule{}",
        rules.len(),
        plural(rules.len())
    );
    for (i, rule) in rules.iter().enumerate() {
        human_rule(out, i + 1, rule);
    }
    let ssh = view.ssh_rules();
    if !ssh.is_empty() {
        let _ = writeln!(out, "  ssh: {} rule{}", ssh.len(), plural(ssh.len()));
        for (i, rule) in ssh.iter().enumerate() {
            human_ssh_rule(out, i + 1, rule);
        }
    }
    let _ = writeln!(out, "  peers: {}", view.peer_count());
    for peer in view.peers() {
        // AllowedIPs beyond the peer's own addresses (host prefixes of its addresses).
        let own = peer.addrs();
        let extra: Vec<String> = peer
            .allowed_ips()
            .iter()
            .filter(|n| !(n.prefix_len() == n.max_prefix_len() && own.contains(&n.addr())))
            .map(ToString::to_string)
            .collect();
        if extra.is_empty() {
            let _ = writeln!(out, "    {}", escape(peer.name()));
        } else {
            let _ = writeln!(out, "    {}  via {}", escape(peer.name()), extra.join(", "));
        }
    }
    out.push('\n');
}

/// The first few of `items`, comma-separated, and how many more there are.
fn first_few(items: &[&str]) -> String {
    const SHOWN: usize = 6;
    let mut text = items
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = items.len().saturating_sub(SHOWN);
    if more > 0 {
        let _ = write!(text, " (+{more} more)");
    }
    text
}

fn human_rule(out: &mut String, n: usize, rule: &FilterRule) {
    let sources: Vec<&str> = rule.src_ips.iter().map(|s| &**s).collect();
    let from = first_few(&sources);
    let proto = match rule.ip_proto.as_slice() {
        [] => String::new(),
        protos => {
            let names: Vec<String> = protos.iter().map(|p| proto_name(*p)).collect();
            format!(" [{}]", names.join(","))
        }
    };
    let _ = writeln!(
        out,
        "    #{n} from {}{proto}",
        if from.is_empty() { "(nobody)" } else { &from }
    );
    for dst in &rule.dst_ports {
        let ports = if dst.ports.first == 0 && dst.ports.last == u16::MAX {
            "*".to_string()
        } else if dst.ports.first == dst.ports.last {
            dst.ports.first.to_string()
        } else {
            format!("{}-{}", dst.ports.first, dst.ports.last)
        };
        let _ = writeln!(out, "        to {} port {ports}", dst.ip);
    }
    for grant in &rule.cap_grant {
        let caps: Vec<&str> = grant.cap_map.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "        grant {} on {}",
            caps.join(", "),
            grant.dsts.join(", ")
        );
    }
}

fn human_ssh_rule(out: &mut String, n: usize, rule: &SshRule) {
    let sources: Vec<&str> = rule
        .principals
        .iter()
        .map(|p| {
            p.node_ip()
                .or(p.user_login())
                .or(p.node())
                .unwrap_or(if p.any() { "*" } else { "?" })
        })
        .collect();
    let from = first_few(&sources);
    let action = if rule.action.is_check() {
        "check"
    } else {
        "accept"
    };
    let users: Vec<String> = rule
        .ssh_users
        .iter()
        .map(|(login, local)| match local.as_str() {
            "" => format!("{login} -> (refused)"),
            "=" => format!("{login} -> (same name)"),
            l => format!("{login} -> {l}"),
        })
        .collect();
    let _ = writeln!(out, "    #{n} {action} from {from}");
    let _ = writeln!(out, "        users {}", users.join(", "));
    if !rule.accept_env.is_empty() {
        let _ = writeln!(out, "        env {}", rule.accept_env.join(", "));
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        58 => "ipv6-icmp".to_string(),
        132 => "sctp".to_string(),
        other => other.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
