//! `aclc schema`: prints the JSON Schema (draft 2020-12) of the policy file or of the node
//! inventory, generated from the code that reads them, for editors' completion and hover text.

use std::io::Write;

use crate::{EXIT_OK, EXIT_USAGE};

/// Which schema to print.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Which {
    /// The policy file (`aclc check`, `aclc compile`).
    Policy,
    /// The node inventory (`--inventory`).
    Inventory,
}

/// Arguments of `aclc schema`.
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {
    /// The schema to print.
    #[arg(value_enum, default_value = "policy")]
    which: Which,
}

pub(crate) fn run(args: &SchemaArgs) -> u8 {
    let schema = match args.which {
        Which::Policy => aclc_policy::schema::policy_schema(),
        Which::Inventory => aclc_compiler::inventory_schema(),
    };
    let text = match serde_json::to_string_pretty(&schema) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("aclc: cannot write the schema: {e}");
            return EXIT_USAGE;
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        // A closed pipe (`| head`) is not worth a complaint, as in the other commands.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("aclc: cannot write the schema: {e}");
            return EXIT_USAGE;
        }
    }
    EXIT_OK
}
