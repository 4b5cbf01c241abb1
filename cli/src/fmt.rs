//! `aclc fmt`: lays policy files out as Tailscale's `hujsonfmt` does (byte for byte), to print,
//! rewrite in place, check in CI or show as a diff.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use aclc_policy::text::escape;
use aclc_policy::{Diagnostic, Limits, Source};

use crate::input::{is_stdin, read_policy, PolicyFile, PolicyLimit};
use crate::report::{eprint_diagnostics, input_error, Format};
use crate::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Exit status of `--check` when a file is not formatted (as `diff --exit-code` will use).
pub(crate) const EXIT_UNFORMATTED: u8 = 4;

/// Arguments of `aclc fmt`.
#[derive(Debug, clap::Args)]
pub(crate) struct FmtArgs {
    /// Policy files (HuJSON or JSON). None, or `-`: standard input, formatted to standard
    /// output.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print nothing but the names of the files that are not formatted (on stderr), and exit
    /// 4 if there is one. With --diff, print their diffs too.
    #[arg(long)]
    check: bool,
    /// Print a unified diff of the changes instead of the formatted text (nothing for a file
    /// that is already formatted).
    #[arg(long)]
    diff: bool,
    /// Rewrite the files that are not formatted, in place.
    #[arg(short = 'w', long = "write", conflicts_with_all = ["check", "diff"])]
    write: bool,
    #[command(flatten)]
    limit: PolicyLimit,
}

/// What was done with one file.
enum Outcome {
    /// Already formatted, or printed, rewritten or diffed as asked.
    Done,
    /// Not formatted (reported by `--check`).
    Unformatted,
    /// A syntax error (rendered on stderr).
    Invalid,
    /// Rewriting failed (reported on stderr).
    Unwritable,
}

/// Run `aclc fmt`; returns the exit status.
pub(crate) fn run(args: &FmtArgs) -> u8 {
    let stdin = [PathBuf::from("-")];
    let paths: &[PathBuf] = if args.files.is_empty() {
        &stdin
    } else {
        &args.files
    };
    let stdin_uses = paths.iter().filter(|p| is_stdin(p)).count();
    if stdin_uses > 1 {
        return usage("standard input (`-`) can be formatted only once");
    }
    if args.write && stdin_uses > 0 {
        return usage("-w rewrites files: standard input (`-`) cannot be rewritten");
    }
    if paths.len() > 1 && !(args.write || args.check || args.diff) {
        return usage(
            "give one file to print it formatted; with several files use -w, --check or --diff",
        );
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        match read_policy(path, &args.limit) {
            Ok(file) => files.push((path.as_path(), file)),
            Err(message) => return input_error(Format::Human, &message),
        }
    }
    let limits = args.limit.policy_limits();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut outcomes = Vec::with_capacity(files.len());
    for (path, file) in &files {
        outcomes.push(format_file(args, path, file, &limits, &mut out));
    }
    let flushed = written(out.flush());
    drop(out);
    if !flushed || outcomes.iter().any(|o| matches!(o, Outcome::Unwritable)) {
        EXIT_USAGE
    } else if outcomes.iter().any(|o| matches!(o, Outcome::Invalid)) {
        EXIT_INVALID
    } else if outcomes.iter().any(|o| matches!(o, Outcome::Unformatted)) {
        EXIT_UNFORMATTED
    } else {
        EXIT_OK
    }
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

fn format_file(
    args: &FmtArgs,
    path: &Path,
    file: &PolicyFile,
    limits: &Limits,
    out: &mut impl Write,
) -> Outcome {
    let (source, diagnostics) = aclc_policy::source_from_bytes(&file.name, &file.bytes, limits);
    // Bytes that are not UTF-8 inside strings (where `check` reads them as U+FFFD, as
    // Tailscale does) are a warning, and kept as they are, as `hujsonfmt` keeps them.
    if diagnostics.iter().any(Diagnostic::is_error) {
        eprint_diagnostics(&diagnostics, &source, 0);
        return Outcome::Invalid;
    }
    let formatted = match aclc_policy::hujson::format(&source, limits) {
        Ok(formatted) => formatted,
        Err(found) => {
            eprint_diagnostics(&found.0, &source, 0);
            return Outcome::Invalid;
        }
    };
    let Some(bytes) = restored(&file.bytes, &formatted) else {
        eprintln!(
            "error: {}: the bytes that are not UTF-8 could not be kept in place",
            escape(&file.name)
        );
        return Outcome::Invalid;
    };
    let changed = *bytes != *file.bytes;
    if args.diff && changed {
        let name = escape(&file.name);
        let diff =
            crate::unified::unified(&format!("{name}.orig"), &name, source.text(), &formatted);
        if !written(out.write_all(diff.as_bytes())) {
            return Outcome::Unwritable;
        }
    }
    if args.check {
        if changed {
            eprintln!("{}", escape(&file.name));
            return Outcome::Unformatted;
        }
        return Outcome::Done;
    }
    if args.write {
        if changed {
            if let Err(message) = rewrite(path, &source, &bytes) {
                eprintln!("error: {}", escape(&message));
                return Outcome::Unwritable;
            }
        }
        return Outcome::Done;
    }
    if !args.diff && !written(out.write_all(&bytes)) {
        return Outcome::Unwritable;
    }
    Outcome::Done
}

/// False, with a message, when a write to standard output failed (a full disk): the
/// formatted text was lost. A closed pipe (`aclc fmt | head`) is not worth a different exit
/// status: the reader took what it wanted.
fn written(result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            false
        }
    }
}

/// The formatted text with each U+FFFD that stands for a byte of the input that is not
/// UTF-8 ([`aclc_policy::source_from_bytes`] reads each such byte as one U+FFFD) given its
/// byte back, as `hujsonfmt` keeps them: the formatter moves no character of a string, so the
/// replacement characters come out in the order they went in. A string with an escape is
/// written afresh by `hujsonfmt`, its invalid bytes as U+FFFD: those stay U+FFFD (hujson's
/// own `Format` vectors; a byte kept there differed from `hujsonfmt`). `None` when their
/// count differs (nothing is written then). O(input + output).
fn restored<'f>(input: &[u8], formatted: &'f str) -> Option<Cow<'f, [u8]>> {
    let rewritten = strings_with_escapes(input);
    let in_rewritten = |at: usize| {
        let i = rewritten.partition_point(|&(_, end)| end <= at);
        rewritten.get(i).is_some_and(|&(start, _)| start <= at)
    };
    // What each U+FFFD of the text read stands for, in order: a byte, or itself.
    let mut stands_for: Vec<Option<u8>> = Vec::new();
    let mut at = 0;
    for chunk in input.utf8_chunks() {
        let genuine = chunk.valid().matches(char::REPLACEMENT_CHARACTER).count();
        stands_for.extend(std::iter::repeat_n(None, genuine));
        at += chunk.valid().len();
        for &b in chunk.invalid() {
            stands_for.push((!in_rewritten(at)).then_some(b));
            at += 1;
        }
    }
    if stands_for.iter().all(Option::is_none) {
        return Some(Cow::Borrowed(formatted.as_bytes()));
    }
    let mut bytes = Vec::with_capacity(formatted.len());
    let mut next = stands_for.into_iter();
    let mut rest = formatted;
    while let Some(at) = rest.find(char::REPLACEMENT_CHARACTER) {
        bytes.extend_from_slice(rest.get(..at)?.as_bytes());
        match next.next()? {
            Some(b) => bytes.push(b),
            None => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
        }
        rest = rest.get(at + char::REPLACEMENT_CHARACTER.len_utf8()..)?;
    }
    bytes.extend_from_slice(rest.as_bytes());
    next.next().is_none().then_some(Cow::Owned(bytes))
}

/// The byte ranges (start, end) of the string literals of `input` (a HuJSON text that
/// parsed) that hold a backslash escape, in order. Comments are skipped; an unterminated
/// string or comment ends the scan. O(input).
fn strings_with_escapes(input: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match (b, input.get(i + 1)) {
            (b'"', _) => {
                let start = i;
                let mut escaped = false;
                i += 1;
                loop {
                    match input.get(i) {
                        None => return out,
                        Some(b'\\') => {
                            escaped = true;
                            i += 2;
                        }
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                if escaped {
                    out.push((start, i));
                }
            }
            (b'/', Some(b'/')) => match input
                .get(i..)
                .and_then(|r| r.iter().position(|&c| c == b'\n'))
            {
                Some(n) => i += n + 1,
                None => return out,
            },
            (b'/', Some(b'*')) => match input
                .get(i + 2..)
                .and_then(|r| r.windows(2).position(|w| w == b"*/"))
            {
                Some(n) => i += n + 4,
                None => return out,
            },
            _ => i += 1,
        }
    }
    out
}

/// Replaces the file at `path` with `text`: written to a temporary file beside it (with the
/// same permissions), then renamed over it, so the policy is never seen half written.
/// A symbolic link is followed: its target is rewritten.
fn rewrite(path: &Path, source: &Source, text: &[u8]) -> Result<(), String> {
    let name = source.name();
    let target = std::fs::canonicalize(path).map_err(|e| format!("cannot rewrite {name}: {e}"))?;
    let permissions = std::fs::metadata(&target)
        .map_err(|e| format!("cannot rewrite {name}: {e}"))?
        .permissions();
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = target.with_file_name(format!(".{file_name}.aclc-fmt-{}", std::process::id()));
    let written = std::fs::write(&temporary, text)
        .and_then(|()| std::fs::set_permissions(&temporary, permissions))
        .and_then(|()| std::fs::rename(&temporary, &target));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot rewrite {name}: {e}")
    })
}
