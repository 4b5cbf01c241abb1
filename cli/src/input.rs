//! Reading the command line's inputs: policy files (or standard input) and the node inventory,
//! with error messages that name the file, and parsing a policy in the inventory's context,
//! the sequence `check`, `compile` and `test` share.

use std::io::Read;
use std::path::Path;

use aclc_compiler::Inventory;
use aclc_policy::{Checked, Diagnostic, Limits, Options, Source};

use crate::report::{input_error, Format};

/// The name standard input is shown as.
pub(crate) const STDIN_NAME: &str = "<stdin>";

/// One policy file as read from disk or standard input.
pub(crate) struct PolicyFile {
    /// The name to show: the path as given, or `<stdin>`.
    pub(crate) name: String,
    /// The raw bytes: at most one more than the size limit, so that an endless or huge input
    /// (`/dev/zero`, a multi-gigabyte file) is never read whole.
    pub(crate) bytes: Vec<u8>,
    /// When the input was cut short at the limit: its real size, if the file system knows it
    /// (a regular file), for the message.
    pub(crate) cut: Option<Option<u64>>,
}

/// Read at most `limit + 1` bytes of `reader`: enough to tell that it is over the limit.
fn read_capped(mut reader: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Read a policy argument; `-` reads standard input.
pub(crate) fn read_policy(arg: &Path) -> Result<PolicyFile, String> {
    let limit = Limits::default().max_bytes;
    if arg == Path::new("-") {
        let bytes = read_capped(std::io::stdin().lock(), limit)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        let cut = (bytes.len() > limit).then_some(None);
        return Ok(PolicyFile {
            name: STDIN_NAME.to_string(),
            bytes,
            cut,
        });
    }
    let name = arg.display().to_string();
    let file = std::fs::File::open(arg).map_err(|e| format!("cannot read {name}: {e}"))?;
    let size = file
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let bytes = read_capped(file, limit).map_err(|e| format!("cannot read {name}: {e}"))?;
    let cut = (bytes.len() > limit).then_some(size);
    Ok(PolicyFile { name, bytes, cut })
}

/// Read and validate an inventory; its warnings are printed on stderr.
pub(crate) fn read_inventory(path: &Path) -> Result<Inventory, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let inventory =
        Inventory::from_json(&text).map_err(|e| format!("invalid inventory {name}: {e}"))?;
    for warning in inventory.warnings() {
        eprintln!("warning: {name}: {}", warning.message);
    }
    Ok(inventory)
}

/// A policy file decoded and parsed.
pub(crate) struct ParsedPolicy {
    /// The decoded text.
    pub(crate) source: Source,
    /// What decoding reported and, when the policy was refused, every diagnostic of the
    /// refusal (a valid policy's warnings are in `checked`).
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// The valid policy and its warnings; `None` when it was refused.
    pub(crate) checked: Option<Checked>,
}

/// Decode and parse a policy file with `options`. Undecodable input (bad UTF-8, too large) is
/// not parsed: it would only produce confusing follow-on errors.
pub(crate) fn parse_policy(file: &PolicyFile, options: &Options) -> ParsedPolicy {
    let (source, mut diagnostics) =
        aclc_policy::source_from_bytes(&file.name, &file.bytes, &options.limits);
    if let Some(size) = file.cut {
        // Only the first bytes were read: the size in the message is the file's, or unknown.
        let max = options.limits.max_bytes;
        for d in diagnostics
            .iter_mut()
            .filter(|d| d.code == "aclc::too_large")
        {
            d.message = match size {
                Some(size) => {
                    format!("the policy is {size} bytes, more than the limit of {max} bytes")
                }
                None => format!("the policy is more than the limit of {max} bytes"),
            };
        }
    }
    let checked = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        match aclc_policy::parse(&source, options) {
            Ok(checked) => Some(checked),
            Err(found) => {
                diagnostics.extend(found.0);
                None
            }
        }
    };
    ParsedPolicy {
        source,
        diagnostics,
        checked,
    }
}

/// Read the inventory, then the policy, and parse the policy in the inventory's context (its
/// users and tailnet domain): what `compile` and `test` start from. Whatever stops them is
/// reported in `format` (an unreadable input here, a refused policy by `refused`), and the
/// error is then the exit status.
pub(crate) fn read_inputs(
    policy: &Path,
    inventory: &Path,
    format: Format,
    refused: fn(Format, &Source, &[Diagnostic]) -> u8,
) -> Result<(Inventory, Source, Checked), u8> {
    let inventory = read_inventory(inventory).map_err(|m| input_error(format, &m))?;
    let file = read_policy(policy).map_err(|m| input_error(format, &m))?;
    let options = Options {
        context: inventory.policy_context(),
        ..Options::default()
    };
    let parsed = parse_policy(&file, &options);
    match parsed.checked {
        Some(checked) => Ok((inventory, parsed.source, checked)),
        None => Err(refused(format, &parsed.source, &parsed.diagnostics)),
    }
}
