//! `aclc diff OLD NEW`: the change in access a policy change makes, not in text. With an
//! inventory, both policies are compiled against it and compared node by node (the library's
//! access diff); always, the semantic change per section (rules and definitions added,
//! removed, changed). Human, JSON, Markdown (what a bot posts on a pull request), GitHub
//! workflow commands and SARIF.

use std::fmt::Write as _;
use std::path::PathBuf;

use aclc_compiler::diff::{access_diff, AccessDiff, Changes, DiffOptions, Nodes, RuleRef, Side};
use aclc_compiler::{try_compile_with_options, Compiled, Inventory};
use aclc_policy::diff::{Entry, PolicyDiff, SectionDiff};
use aclc_policy::hujson;
use aclc_policy::model::Policy;
use aclc_policy::text::escape;
use aclc_policy::{Diagnostic, Options, Source};
use serde_json::{json, Value};

use crate::ci::{escape_data, escape_property as property};
use crate::input::{is_stdin, parse_policy, read_inventory, read_policy, InputLimits};
use crate::report::{
    eprint_diagnostics, input_error, print_json, Format, JsonError, DEFAULT_MAX_DIAGNOSTICS,
};
use crate::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Exit status with `--exit-code` when access (or, without an inventory, the policy's
/// meaning) changed.
pub(crate) const EXIT_CHANGED: u8 = 4;

/// Output formats of `aclc diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DiffFormat {
    /// For a person, on stdout.
    Human,
    /// One JSON document on stdout.
    Json,
    /// Markdown, for a pull-request comment.
    Markdown,
    /// GitHub workflow commands (`::notice`), one per change.
    Github,
    /// SARIF 2.1.0, one result per change.
    Sarif,
}

/// Arguments of `aclc diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The policy before the change; `-` reads standard input.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The policy after the change; `-` reads standard input.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Node inventory (JSON): compare what each node receives, not only the rules; `-` reads
    /// standard input.
    #[arg(long, value_name = "INVENTORY")]
    inventory: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    format: DiffFormat,
    /// Exit with status 4 when access changed (without an inventory: when the policy's
    /// meaning changed), 0 when not.
    #[arg(long)]
    exit_code: bool,
    /// Node names listed per change (all are counted).
    #[arg(long, value_name = "N", default_value_t = 20)]
    max_names: usize,
    /// Changes listed per list (gained, lost); the rest are counted.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_changes: usize,
    /// Human output renders at most this many diagnostics of a refused policy (0: all).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DIAGNOSTICS)]
    max_diagnostics: usize,
    #[command(flatten)]
    limits: InputLimits,
    #[command(flatten)]
    exit: crate::compile::ExitNodeArgs,
}

/// One side, read and checked.
struct Loaded {
    source: Source,
    document: hujson::Document,
    policy: Policy,
}

/// Run `aclc diff`; returns the exit status.
pub(crate) fn run(args: &DiffArgs) -> u8 {
    let json_errors = if args.format == DiffFormat::Json {
        Format::Json
    } else {
        Format::Human
    };
    let stdin_count = [Some(&args.old), Some(&args.new), args.inventory.as_ref()]
        .iter()
        .flatten()
        .filter(|p| is_stdin(p))
        .count();
    if stdin_count > 1 {
        return input_error(
            json_errors,
            "standard input (`-`) can be read only once: give OLD, NEW or the inventory as a file",
        );
    }
    let inventory = match &args.inventory {
        Some(path) => match read_inventory(path, &args.limits) {
            Ok(inventory) => Some(inventory),
            Err(message) => return input_error(json_errors, &message),
        },
        None => None,
    };
    let options = Options {
        context: inventory
            .as_ref()
            .map(Inventory::policy_context)
            .unwrap_or_default(),
        limits: args.limits.policy_limits(),
    };
    let old = match load(args, &args.old, &options, json_errors) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let new = match load(args, &args.new, &options, json_errors) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let semantic = aclc_policy::diff::diff(&old.document, &old.source, &new.document, &new.source);
    let access = match &inventory {
        Some(inventory) => {
            // The two compiles are independent: one on each core.
            let compile_options = args.exit.compile_options();
            let compile =
                |side: &Loaded| try_compile_with_options(&side.policy, inventory, &compile_options);
            let (o, n) = std::thread::scope(|scope| {
                let old_compile = scope.spawn(|| compile(&old));
                let n = compile(&new);
                let o = old_compile
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                (o, n)
            });
            let refused = |side: &Loaded, e: aclc_compiler::CompileError| {
                invalid(
                    json_errors,
                    args.max_diagnostics,
                    &side.source,
                    &[e.to_diagnostic()],
                )
            };
            let (o, n): (Compiled, Compiled) = match (o, n) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(e), _) => return refused(&old, e),
                (_, Err(e)) => return refused(&new, e),
            };
            let mut options = DiffOptions::default();
            options.max_names = args.max_names;
            options.max_changes = args.max_changes;
            Some(access_diff(
                Side {
                    policy: &old.policy,
                    source: &old.source,
                    compiled: &o,
                },
                Side {
                    policy: &new.policy,
                    source: &new.source,
                    compiled: &n,
                },
                &options,
            ))
        }
        None => None,
    };
    let changed = match &access {
        Some(access) => !access.is_empty(),
        None => !semantic.is_empty(),
    };
    let report = Report {
        old: &old.source,
        new: &new.source,
        semantic: &semantic,
        access: access.as_ref(),
    };
    let text = match args.format {
        DiffFormat::Human => report.human(),
        DiffFormat::Markdown => report.markdown(),
        DiffFormat::Github => report.github(),
        DiffFormat::Json => report.json().to_string() + "\n",
        DiffFormat::Sarif => serde_json::to_string(&report.sarif()).unwrap_or_default() + "\n",
    };
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
            return EXIT_USAGE;
        }
    }
    if args.exit_code && changed {
        EXIT_CHANGED
    } else {
        EXIT_OK
    }
}

/// Read, parse and validate one side; a refusal is reported and becomes the exit status.
fn load(
    args: &DiffArgs,
    path: &std::path::Path,
    options: &Options,
    format: Format,
) -> Result<Loaded, u8> {
    let file = read_policy(path, &args.limits.policy).map_err(|m| input_error(format, &m))?;
    let parsed = parse_policy(&file, options);
    let Some(checked) = parsed.checked else {
        return Err(invalid(
            format,
            args.max_diagnostics,
            &parsed.source,
            &parsed.diagnostics,
        ));
    };
    let (document, _) = hujson::parse(&parsed.source, &options.limits);
    let Some(document) = document else {
        // Unreachable for a policy that validated; refuse rather than diff nothing.
        return Err(input_error(format, "cannot re-read the policy"));
    };
    Ok(Loaded {
        source: parsed.source,
        document,
        policy: checked.policy,
    })
}

/// Report an invalid policy: rendered diagnostics on stderr, or the JSON document.
fn invalid(format: Format, max: usize, source: &Source, diagnostics: &[Diagnostic]) -> u8 {
    match format {
        Format::Human => eprint_diagnostics(diagnostics, source, max),
        Format::Json => print_json(&json!({
            "valid": false,
            "error": JsonError::new(format!("{} is not a valid policy", source.name()), diagnostics, source),
        })),
    }
    EXIT_INVALID
}

/// Everything one run found, and its renderings.
struct Report<'a> {
    old: &'a Source,
    new: &'a Source,
    semantic: &'a PolicyDiff,
    access: Option<&'a AccessDiff>,
}

/// `name` or `name, name and 3 more` — names with the total.
fn list(nodes: &Nodes) -> String {
    let mut text = nodes.names.join(", ");
    let more = nodes.count.saturating_sub(nodes.names.len());
    if more > 0 {
        let _ = write!(text, " and {more} more");
    }
    text
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Where the markdown table of changes stops (a row that would pass it is left out and
/// counted): GitHub refuses a comment longer than 65,536 characters, and the policy changes
/// follow the table.
const MARKDOWN_TABLE_BUDGET: usize = 48_000;

/// Where the markdown's policy changes stop (a section started past it is left out).
const MARKDOWN_BUDGET: usize = 60_000;

/// The longest markdown written: GitHub's comment limit, less a margin.
const MARKDOWN_LIMIT: usize = 64_000;

/// One line per change, for every format: (gained, headline, detail lines, rule location).
struct Line {
    kind: &'static str,
    gained: bool,
    headline: String,
    details: Vec<String>,
    /// (file, line) of the responsible rule, if known.
    at: Option<(String, usize)>,
}

impl Line {
    /// A change pointing at the rules responsible: one detail line each, after `details`,
    /// and the first as its place.
    fn ruled(
        kind: &'static str,
        gained: bool,
        headline: String,
        mut details: Vec<String>,
        rules: &[RuleRef],
    ) -> Line {
        details.extend(
            rules
                .iter()
                .map(|r| format!("rule {}:{}: {}", r.file, r.line, r.text)),
        );
        Line {
            kind,
            gained,
            headline,
            details,
            at: rules.first().map(|r| (r.file.clone(), r.line)),
        }
    }
}

impl Report<'_> {
    fn lines(&self) -> Vec<Line> {
        let Some(access) = self.access else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (gained, list_of) in [
            (true, &access.network.gained),
            (false, &access.network.lost),
        ] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let who = if c.src_selectors.is_empty() {
                    list(&c.src)
                } else {
                    c.src_selectors.join(", ")
                };
                let on = if c.dst_selectors.is_empty() {
                    list(&c.dst)
                } else {
                    c.dst_selectors.join(", ")
                };
                let over = match c.family.as_deref() {
                    Some("ipv4") => " over IPv4 only",
                    Some("ipv6") => " over IPv6 only",
                    _ => "",
                };
                let headline = format!(
                    "{who} {verb} {}/{}{over} on {on}: {} x {}",
                    c.proto,
                    c.ports,
                    plural(c.src.count, "source", "sources"),
                    plural(c.dst.count, "destination", "destinations"),
                );
                let mut sources = format!("sources: {}", list(&c.src));
                if !c.one_family_sources.is_empty() {
                    let each: Vec<String> = c
                        .one_family_sources
                        .iter()
                        .map(|one| {
                            let family = if one.family == "ipv4" { "IPv4" } else { "IPv6" };
                            format!("{} over {family} only", escape(&one.name))
                        })
                        .collect();
                    let _ = write!(sources, " ({})", each.join(", "));
                }
                let details = vec![sources, format!("destinations: {}", list(&c.dst))];
                out.push(Line::ruled("network", gained, headline, details, &c.rules));
            }
        }
        for (gained, list_of) in [(true, &access.ssh.gained), (false, &access.ssh.lost)] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let action = match c.terms.is_empty() {
                    true => c.action.clone(),
                    false => format!("{}: {}", c.action, c.terms),
                };
                let headline = format!(
                    "{} {verb} ssh ({action}) as {} (login {}) on {}",
                    list(&c.src),
                    c.local_user,
                    c.user,
                    list(&c.dst)
                );
                out.push(Line::ruled("ssh", gained, headline, Vec::new(), &c.rules));
            }
        }
        for (gained, list_of) in [
            (true, &access.external.gained),
            (false, &access.external.lost),
        ] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let headline = format!(
                    "{} (another tailnet's devices, not known here) {verb} the access of a rule",
                    c.reference
                );
                out.push(Line::ruled(
                    "external",
                    gained,
                    headline,
                    Vec::new(),
                    &c.rules,
                ));
            }
        }
        for (gained, list_of) in [(true, &access.peers.gained), (false, &access.peers.lost)] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let what = match &c.route {
                    Some(route) => format!("route {route} via peer {}", c.peer),
                    None => format!("peer {}", c.peer),
                };
                out.push(Line {
                    kind: "peers",
                    gained,
                    headline: format!("{} {verb} {what}", list(&c.nodes)),
                    details: Vec::new(),
                    at: None,
                });
            }
        }
        for (gained, list_of) in [
            (true, &access.capabilities.gained),
            (false, &access.capabilities.lost),
        ] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let value = aclc_policy::text::truncate(&c.value.to_string(), 80).into_owned();
                out.push(Line {
                    kind: "capabilities",
                    gained,
                    headline: format!(
                        "{} {verb} capability {} = {value}",
                        list(&c.nodes),
                        c.capability
                    ),
                    details: Vec::new(),
                    at: None,
                });
            }
        }
        for (gained, list_of) in [(true, &access.apps.gained), (false, &access.apps.lost)] {
            for c in list_of {
                let verb = if gained { "gained" } else { "lost" };
                let value = aclc_policy::text::truncate(&c.value.to_string(), 80).into_owned();
                let headline = format!(
                    "{} {verb} app capability {} = {value} on {}",
                    list(&c.src),
                    c.capability,
                    list(&c.dst)
                );
                out.push(Line::ruled("apps", gained, headline, Vec::new(), &c.rules));
            }
        }
        out
    }

    fn totals(&self) -> Option<(usize, usize)> {
        let (gained, lost, _) = self.tally()?;
        Some((gained, lost))
    }

    fn omitted(&self) -> usize {
        self.tally().map_or(0, |(_, _, omitted)| omitted)
    }

    /// (gained, lost, omitted) over the six kinds, omitted changes included in the first two;
    /// `None` without an inventory.
    fn tally(&self) -> Option<(usize, usize, usize)> {
        fn one<T>(c: &Changes<T>) -> (usize, usize, usize) {
            (
                c.gained.len() + c.gained_omitted,
                c.lost.len() + c.lost_omitted,
                c.gained_omitted + c.lost_omitted,
            )
        }
        let a = self.access?;
        let parts = [
            one(&a.network),
            one(&a.ssh),
            one(&a.peers),
            one(&a.capabilities),
            one(&a.apps),
            one(&a.external),
        ];
        Some(
            parts
                .iter()
                .fold((0, 0, 0), |t, p| (t.0 + p.0, t.1 + p.1, t.2 + p.2)),
        )
    }

    fn human(&self) -> String {
        let mut out = String::new();
        match self.totals() {
            Some((0, 0)) => out.push_str("access unchanged\n"),
            Some((g, l)) => {
                let _ = writeln!(out, "access changed: {g} gained, {l} lost");
                for line in self.lines() {
                    let sign = if line.gained { '+' } else { '-' };
                    let _ = writeln!(out, "{sign} {}: {}", line.kind, escape(&line.headline));
                    for d in &line.details {
                        let _ = writeln!(out, "    {}", escape(d));
                    }
                }
                let omitted = self.omitted();
                if omitted > 0 {
                    let _ = writeln!(out, "… and {omitted} more changes (--max-changes)");
                }
            }
            None => {}
        }
        if self.semantic.is_empty() {
            out.push_str("policy unchanged (comments, formatting and order aside)\n");
        } else {
            out.push_str("policy changes:\n");
            for s in &self.semantic.sections {
                let _ = writeln!(out, "  {}: {}", escape(&s.section), section_summary(s));
                for e in &s.added {
                    let _ = writeln!(
                        out,
                        "    + {}:{} {}",
                        escape(self.new.name()),
                        e.line,
                        escape(&entry(e))
                    );
                }
                for e in &s.removed {
                    let _ = writeln!(
                        out,
                        "    - {}:{} {}",
                        escape(self.old.name()),
                        e.line,
                        escape(&entry(e))
                    );
                }
                for c in &s.changed {
                    let name = c
                        .name
                        .as_deref()
                        .map(|n| format!("{n}: "))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    ~ {}:{} -> {}:{} {}{}",
                        escape(self.old.name()),
                        c.old_line,
                        escape(self.new.name()),
                        c.new_line,
                        escape(&name),
                        escape(&items(c))
                    );
                }
                if s.reordered {
                    out.push_str("    rules reordered (the first matching SSH rule decides)\n");
                }
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::from("### aclc: policy change\n\n");
        match self.totals() {
            Some((0, 0)) => out.push_str("**No access changes.**\n\n"),
            Some((g, l)) => {
                let _ = writeln!(out, "**Access changed: {g} gained, {l} lost.**\n");
                out.push_str("| | What | Sources | Destinations | Rule |\n|---|---|---|---|---|\n");
                let lines = self.lines();
                let total = lines.len();
                let mut shown = 0;
                for line in lines {
                    let sign = if line.gained { "➕" } else { "➖" };
                    let (sources, dests) = (
                        line.details.first().cloned().unwrap_or_default(),
                        line.details.get(1).cloned().unwrap_or_default(),
                    );
                    let (sources, dests) = if line.kind == "network" {
                        (
                            sources.trim_start_matches("sources: ").to_string(),
                            dests.trim_start_matches("destinations: ").to_string(),
                        )
                    } else {
                        (String::new(), String::new())
                    };
                    let rule = line
                        .at
                        .as_ref()
                        // A code span: its text escaped for one, not as a cell's.
                        .map(|(f, l)| format!("`{}`", code(&format!("{f}:{l}"))))
                        .unwrap_or_default();
                    let row = format!(
                        "| {sign} {} | {} | {} | {} | {} |\n",
                        line.kind,
                        cell(&line.headline),
                        cell(&sources),
                        cell(&dests),
                        rule
                    );
                    if out.len() + row.len() > MARKDOWN_TABLE_BUDGET {
                        break;
                    }
                    out.push_str(&row);
                    shown += 1;
                }
                let omitted = self.omitted() + (total - shown);
                if omitted > 0 {
                    let _ = writeln!(out, "\n… and {omitted} more changes.");
                }
                if shown < total {
                    out.push_str(
                        "(The table stops short of GitHub's 65,536-character comment limit: \
                         `aclc diff --format json` lists every change.)\n",
                    );
                }
                out.push('\n');
            }
            None => {}
        }
        if self.semantic.is_empty() {
            out.push_str("Policy unchanged (comments, formatting and order aside).\n");
        } else {
            out.push_str("<details><summary>Policy changes</summary>\n\n");
            for s in &self.semantic.sections {
                if out.len() > MARKDOWN_BUDGET {
                    out.push_str("- … (cut short to fit a pull-request comment)\n");
                    break;
                }
                let _ = writeln!(out, "- **{}**: {}", cell(&s.section), section_summary(s));
                for e in &s.added {
                    let _ = writeln!(
                        out,
                        "  - ➕ line {}: `{}`",
                        e.line,
                        code(&escape(&entry(e)))
                    );
                }
                for e in &s.removed {
                    let _ = writeln!(
                        out,
                        "  - ➖ line {} (old): `{}`",
                        e.line,
                        code(&escape(&entry(e)))
                    );
                }
                for c in &s.changed {
                    let name = c
                        .name
                        .as_deref()
                        .map(|n| format!("{n}: "))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  - ✏️ line {}: `{}{}`",
                        c.new_line,
                        code(&name),
                        code(&items(c))
                    );
                }
                if s.reordered {
                    out.push_str("  - rules reordered (the first matching SSH rule decides)\n");
                }
            }
            out.push_str("\n</details>\n");
        }
        // A section of thousands of entries: cut at a line inside the details, and close them.
        if out.len() > MARKDOWN_LIMIT {
            let mut end = MARKDOWN_BUDGET.min(out.len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            let cut = out
                .get(..end)
                .and_then(|head| head.rfind('\n'))
                .unwrap_or(0);
            out.truncate(cut + 1);
            out.push_str("- … (cut short to fit a pull-request comment)\n\n</details>\n");
        }
        out
    }

    fn github(&self) -> String {
        let mut out = String::new();
        let mut notice = |at: Option<(&str, usize)>, title: &str, message: &str| {
            let location = match at {
                Some((file, line)) => format!(" file={},line={line},", property(file)),
                None => " ".to_string(),
            };
            let _ = writeln!(
                out,
                "::notice{location}title={}::{}",
                property(title),
                escape_data(message)
            );
        };
        let new = self.new.name();
        for line in self.lines() {
            let verb = if line.gained { "gained" } else { "lost" };
            // Only gains point into NEW, the file the pull request shows.
            let at = match &line.at {
                Some((file, l)) if file == new && line.gained => Some((new, *l)),
                _ => None,
            };
            notice(
                at,
                &format!("aclc: {} access {verb}", line.kind),
                &line.headline,
            );
        }
        for s in &self.semantic.sections {
            for e in &s.added {
                let title = format!("aclc: {} added", s.section);
                notice(Some((new, e.line)), &title, &entry(e));
            }
            for c in &s.changed {
                let title = format!("aclc: {} changed", s.section);
                notice(Some((new, c.new_line)), &title, &items(c));
            }
            for e in &s.removed {
                notice(None, &format!("aclc: {} removed", s.section), &entry(e));
            }
        }
        out
    }

    fn sarif(&self) -> impl serde::Serialize {
        let mut results = Vec::new();
        let result = |rule: &str, message: String, at: Option<(&str, usize)>| {
            let mut r = json!({
                "ruleId": rule,
                "level": "note",
                "message": {"text": message},
            });
            if let (Some((file, line)), Some(obj)) = (at, r.as_object_mut()) {
                obj.insert(
                    "locations".into(),
                    json!([{"physicalLocation": {
                        "artifactLocation": {"uri": file},
                        "region": {"startLine": line},
                    }}]),
                );
            }
            r
        };
        for line in self.lines() {
            let id = if line.gained {
                "aclc/access-gained"
            } else {
                "aclc/access-lost"
            };
            let at = line.at.as_ref().map(|(f, l)| (f.as_str(), *l));
            results.push(result(id, format!("{}: {}", line.kind, line.headline), at));
        }
        for s in &self.semantic.sections {
            for e in &s.added {
                results.push(result(
                    "aclc/policy-added",
                    format!("{} added: {}", s.section, entry(e)),
                    Some((self.new.name(), e.line)),
                ));
            }
            for c in &s.changed {
                results.push(result(
                    "aclc/policy-changed",
                    format!("{} changed: {}", s.section, items(c)),
                    Some((self.new.name(), c.new_line)),
                ));
            }
            for e in &s.removed {
                results.push(result(
                    "aclc/policy-removed",
                    format!("{} removed: {}", s.section, entry(e)),
                    Some((self.old.name(), e.line)),
                ));
            }
        }
        let rules: Vec<Value> = [
            (
                "aclc/access-gained",
                "Access the new policy grants that the old did not",
            ),
            (
                "aclc/access-lost",
                "Access the old policy granted that the new does not",
            ),
            ("aclc/policy-added", "A rule or definition added"),
            ("aclc/policy-changed", "A rule or definition changed"),
            ("aclc/policy-removed", "A rule or definition removed"),
        ]
        .iter()
        .map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}}))
        .collect();
        crate::ci::sarif_log("https://github.com/aclc/aclc", rules, results)
    }

    fn json(&self) -> Value {
        aclc_compiler::diff::document(self.old, self.new, self.semantic, self.access)
    }
}

fn section_summary(s: &SectionDiff) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.added.len(), "added"),
        (s.removed.len(), "removed"),
        (s.changed.len(), "changed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if s.reordered {
        parts.push("reordered".into());
    }
    parts.join(", ")
}

fn entry(e: &Entry) -> String {
    match &e.name {
        Some(name) => format!("{name}: {}", e.text),
        None => e.text.clone(),
    }
}

/// A changed entry: `src +a -b; dst +c`, or old -> new when no list changed.
fn items(c: &aclc_policy::diff::Changed) -> String {
    let mut parts = Vec::new();
    let fields: std::collections::BTreeSet<&String> =
        c.items_added.keys().chain(c.items_removed.keys()).collect();
    for field in fields {
        let mut part = field.to_string();
        for item in c.items_added.get(field).into_iter().flatten() {
            let _ = write!(part, " +{item}");
        }
        for item in c.items_removed.get(field).into_iter().flatten() {
            let _ = write!(part, " -{item}");
        }
        parts.push(part);
    }
    if parts.is_empty() {
        format!("{} -> {}", c.old, c.new)
    } else {
        parts.join("; ")
    }
}

/// Text safe in a Markdown table cell: a policy's names and rule text are the pull request
/// author's, so nothing in them may render as HTML (`</details>` closed the comment's fold),
/// a link, emphasis or code, or notify anyone (`@org/team`).
fn cell(text: &str) -> String {
    let text = escape(text);
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    for (at, c) in text.char_indices() {
        let rest = text.get(at..).unwrap_or_default();
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '[' | ']' | '*' | '_' | '`' | '~' | '\\' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            // A mention starts where no ASCII word goes on: a zero-width space keeps it text.
            '@' if !prev.is_some_and(|p| p.is_ascii_alphanumeric()) => out.push_str("@\u{200b}"),
            // GitHub links a bare `scheme://` or `www.`: a zero-width space breaks either.
            ':' if rest.starts_with("://") => out.push_str(":\u{200b}"),
            '.' if prev == Some('w') && out.to_ascii_lowercase().ends_with("www") => {
                out.push_str("\u{200b}.")
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// Text safe inside Markdown backticks (on one line).
fn code(text: &str) -> String {
    escape(text).replace('`', "'").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    /// What a pull request's author writes in a policy stays text in the comment.
    #[test]
    fn cells_render_nothing_from_the_policy() {
        let hostile = "x</details><img src=y> [c](http://evil) @org/team *b* `q` a|b \
                       https://evil.example www.evil.example é@team";
        let cell = super::cell(hostile);
        for raw in [
            "</details>",
            "<img",
            "[c](",
            "@org",
            "*b*",
            "`q`",
            "://",
            "www.",
            "@team",
        ] {
            assert!(!cell.contains(raw), "{raw} in {cell}");
        }
        assert!(cell.contains("a\\|b"), "{cell}");
        // A login keeps its at sign as is: no mention starts inside a word.
        assert_eq!(super::cell("alice@example.com"), "alice@example.com");
    }
}
