//! Reading the command line's inputs: policy files (or standard input) and the node inventory,
//! with error messages that name the file, and parsing a policy in the inventory's context,
//! the sequence `check`, `compile` and `test` share.

use std::io::Read;
use std::path::Path;

use aclc_compiler::Inventory;
use aclc_policy::text::escape;
use aclc_policy::{Checked, Diagnostic, Limits, Options, Source};

use crate::report::{input_error, Format};

/// The name standard input is shown as.
pub(crate) const STDIN_NAME: &str = "<stdin>";

/// Default cap on the inventory: a tailnet of a million nodes fits with room to spare.
const DEFAULT_MAX_INVENTORY: &str = "256MiB";

/// How much input is read at most, from the command line. Every read stops one byte past its
/// limit, so `/dev/zero`, an endless pipe or a huge file costs at most the limit in memory.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct InputLimits {
    #[command(flatten)]
    pub(crate) policy: PolicyLimit,
    /// Largest inventory accepted, in bytes (suffixes KiB, MiB, GiB allowed); a larger one is
    /// refused, exit status 1.
    #[arg(long, value_name = "BYTES", default_value = DEFAULT_MAX_INVENTORY, value_parser = parse_size)]
    pub(crate) max_inventory_bytes: u64,
}

impl InputLimits {
    /// The policy crate's limits with this policy size cap.
    pub(crate) fn policy_limits(&self) -> Limits {
        self.policy.policy_limits()
    }
}

/// How much of a policy is read at most (the part of [`InputLimits`] that `fmt` needs too).
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct PolicyLimit {
    /// Largest policy accepted, in bytes (suffixes KiB, MiB, GiB allowed; a value over 4 GiB
    /// counts as 4 GiB); a larger policy is refused, exit status 1.
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub(crate) max_policy_bytes: u64,
}

impl PolicyLimit {
    /// The policy crate's limits with this policy size cap. Spans are 32-bit, so the cap
    /// stops just below 4 GiB.
    pub(crate) fn policy_limits(&self) -> Limits {
        let max = self.policy_cap();
        Limits {
            max_bytes: usize::try_from(max).unwrap_or(usize::MAX),
            ..Limits::default()
        }
    }

    fn policy_cap(&self) -> u64 {
        self.max_policy_bytes.min(u64::from(u32::MAX) - 1)
    }
}

/// `16777216`, `64KiB`, `16MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB`, all binary).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size in bytes (e.g. 16777216 or 16MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit `{other}` (use KiB, MiB or GiB)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `16 MiB`, `64 KiB` or `1000 bytes`.
fn show_size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// True when `arg` is `-` (standard input).
pub(crate) fn is_stdin(arg: &Path) -> bool {
    arg == Path::new("-")
}

/// The usage error when both a policy and the inventory are `-`.
pub(crate) const STDIN_TWICE: &str =
    "standard input (`-`) can be read only once: give the policy or the inventory as a file";

/// Read at most `limit` bytes of `arg` (`-`: standard input); its display name and bytes.
/// A larger input is refused without being read further; `flag` is the option that raises
/// the limit.
fn read_bounded(arg: &Path, limit: u64, flag: &str) -> Result<(String, Vec<u8>), String> {
    let (name, reader, known_len): (String, Box<dyn Read>, Option<u64>) = if is_stdin(arg) {
        (
            STDIN_NAME.to_string(),
            Box::new(std::io::stdin().lock()),
            None,
        )
    } else {
        let name = arg.display().to_string();
        let file = std::fs::File::open(arg).map_err(|e| format!("cannot read {name}: {e}"))?;
        let len = file
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len());
        (name, Box::new(file), len)
    };
    let too_large = |size: String| {
        format!(
            "{name} is larger than the {} limit ({size}; {flag} raises the limit)",
            show_size(limit)
        )
    };
    if let Some(len) = known_len.filter(|&len| len > limit) {
        return Err(too_large(format!("{len} bytes")));
    }
    // Room for everything `take` may read, asked for at once: grown by doubling, the buffer
    // of a stream at the limit was copied into one twice its size (`--inventory /dev/zero`
    // peaked at 808 MB against the 256 MiB limit). Unread room is address space, not memory;
    // when the system refuses that much, the buffer grows as it reads.
    let capacity = known_len.map_or(limit.saturating_add(1), |len| len.min(limit));
    let mut bytes = Vec::new();
    if bytes
        .try_reserve_exact(usize::try_from(capacity).unwrap_or(usize::MAX))
        .is_err()
    {
        bytes = Vec::new();
    }
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(format!("more than {limit} bytes")));
    }
    Ok((name, bytes))
}

/// One policy file as read from disk or standard input.
pub(crate) struct PolicyFile {
    /// The name to show: the path as given, or `<stdin>`.
    pub(crate) name: String,
    /// The raw bytes.
    pub(crate) bytes: Vec<u8>,
}

/// Read a policy argument; `-` reads standard input. At most the policy limit is read.
pub(crate) fn read_policy(arg: &Path, limits: &PolicyLimit) -> Result<PolicyFile, String> {
    let (name, bytes) = read_bounded(arg, limits.policy_cap(), "--max-policy-bytes")?;
    Ok(PolicyFile { name, bytes })
}

/// Read and validate an inventory (`-`: standard input); its warnings are printed on stderr.
pub(crate) fn read_inventory(path: &Path, limits: &InputLimits) -> Result<Inventory, String> {
    let (name, bytes) = read_bounded(path, limits.max_inventory_bytes, "--max-inventory-bytes")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("cannot read {name}: stream did not contain valid UTF-8"))?;
    let inventory =
        Inventory::from_json(&text).map_err(|e| format!("invalid inventory {name}: {e}"))?;
    for warning in inventory.warnings() {
        eprintln!("warning: {}: {}", escape(&name), escape(&warning.message));
    }
    Ok(inventory)
}

pub(crate) use aclc_api::shape::ParsedPolicy;

/// Decode and parse a policy file with `options` (the embedding API does the same).
pub(crate) fn parse_policy(file: &PolicyFile, options: &Options) -> ParsedPolicy {
    aclc_api::shape::parse_policy(&file.name, &file.bytes, options)
}

/// Read the inventory, then the policy, and parse the policy in the inventory's context (its
/// users and tailnet domain): what `compile` and `test` start from. Whatever stops them is
/// reported in `format` (an unreadable input here, a refused policy by `refused`), and the
/// error is then the exit status.
pub(crate) fn read_inputs(
    policy: &Path,
    inventory: &Path,
    limits: &InputLimits,
    format: Format,
    refused: impl FnOnce(&Source, &[Diagnostic]) -> u8,
) -> Result<(Inventory, Source, Checked), u8> {
    if is_stdin(policy) && is_stdin(inventory) {
        return Err(input_error(format, STDIN_TWICE));
    }
    let inventory = read_inventory(inventory, limits).map_err(|m| input_error(format, &m))?;
    let file = read_policy(policy, &limits.policy).map_err(|m| input_error(format, &m))?;
    let options = Options {
        context: inventory.policy_context(),
        limits: limits.policy_limits(),
    };
    let parsed = parse_policy(&file, &options);
    match parsed.checked {
        Some(checked) => Ok((inventory, parsed.source, checked)),
        None => Err(refused(&parsed.source, &parsed.diagnostics)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16777216"), Ok(16 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert_eq!(show_size(16 << 20), "16 MiB");
        assert_eq!(show_size(64 << 10), "64 KiB");
        assert_eq!(show_size(100), "100 bytes");
    }

    #[test]
    fn the_default_policy_cap_is_the_policy_crates() {
        assert_eq!(
            parse_size("16MiB").map(|n| n as usize),
            Ok(Limits::default().max_bytes)
        );
    }
}
