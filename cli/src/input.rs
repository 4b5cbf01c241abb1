//! Reading the command line's inputs: policy files (or standard input) and the node inventory,
//! with error messages that name the file, and parsing a policy in the inventory's context,
//! the sequence `check`, `compile` and `test` share.

use std::io::Read;
use std::path::Path;

use aclc_compiler::Inventory;
use aclc_policy::{Checked, Diagnostic, Options, Source};

use crate::report::{input_error, Format};

/// The name standard input is shown as.
pub(crate) const STDIN_NAME: &str = "<stdin>";

/// One policy file as read from disk or standard input.
pub(crate) struct PolicyFile {
    /// The name to show: the path as given, or `<stdin>`.
    pub(crate) name: String,
    /// The raw bytes.
    pub(crate) bytes: Vec<u8>,
}

/// Read a policy argument; `-` reads standard input.
pub(crate) fn read_policy(arg: &Path) -> Result<PolicyFile, String> {
    if arg == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(PolicyFile {
            name: STDIN_NAME.to_string(),
            bytes,
        });
    }
    let name = arg.display().to_string();
    let bytes = std::fs::read(arg).map_err(|e| format!("cannot read {name}: {e}"))?;
    Ok(PolicyFile { name, bytes })
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
