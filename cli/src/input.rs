//! Reading the command line's inputs: policy files (or standard input) and the node inventory,
//! with error messages that name the file.

use std::io::Read;
use std::path::Path;

use aclc_compiler::Inventory;

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

/// Read and validate an inventory; its warnings come back as messages to show.
pub(crate) fn read_inventory(path: &Path) -> Result<(Inventory, Vec<String>), String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let inventory =
        Inventory::from_json(&text).map_err(|e| format!("invalid inventory {name}: {e}"))?;
    let warnings = inventory
        .warnings()
        .into_iter()
        .map(|w| format!("{name}: {}", w.message))
        .collect();
    Ok((inventory, warnings))
}
