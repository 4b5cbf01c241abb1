//! The ops that keep nothing between requests (`check`, `fmt`, `test`, `diff`): each reads
//! its policies from the request and answers as the CLI's `--format json` does.

use super::*;

/// The arguments of `check` and `test`: a policy, and optionally the inventory its tests and
/// references are read against.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckArgs {
    pub(super) policy: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) inventory: Option<Value>,
}

/// `test` takes what `check` takes.
pub(super) type TestArgs = CheckArgs;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FmtArgs {
    pub(super) policy: String,
    #[serde(default)]
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffArgs {
    pub(super) old: String,
    pub(super) new: String,
    #[serde(default)]
    pub(super) old_name: Option<String>,
    #[serde(default)]
    pub(super) new_name: Option<String>,
    #[serde(default)]
    pub(super) inventory: Option<Value>,
}

/// `aclc diff --format json`: the semantic diff and, with an inventory, the access diff.
pub(super) fn diff(args: DiffArgs) -> Reply {
    let inventory = args.inventory.as_ref().map(read_inventory).transpose()?;
    let options = Options {
        context: inventory
            .as_ref()
            .map(Inventory::policy_context)
            .unwrap_or_default(),
        ..Options::default()
    };
    let side = |text: &str, name: &str| -> Result<_, Failure> {
        let parsed = parse_policy(name, text.as_bytes(), &options);
        let source = parsed.source;
        let Some(checked) = parsed.checked else {
            let message = format!("{name} is not a valid policy");
            return Err(Failure::refused(JsonError::new(
                message,
                &parsed.diagnostics,
                &source,
            )));
        };
        let (Some(document), _) = aclc_policy::hujson::parse(&source, &options.limits) else {
            return Err(Failure::new("internal", "cannot re-read the policy"));
        };
        Ok((source, document, checked.policy))
    };
    let old = side(&args.old, args.old_name.as_deref().unwrap_or("old.hujson"))?;
    let new = side(&args.new, args.new_name.as_deref().unwrap_or("new.hujson"))?;
    let semantic = aclc_policy::diff::diff(&old.1, &old.0, &new.1, &new.0);
    let access = match &inventory {
        Some(inventory) => {
            let compile = |policy, source: &Source| {
                try_compile_with_options(policy, inventory, &CompileOptions::default()).map_err(
                    |e| {
                        let found = [e.to_diagnostic()];
                        Failure::refused(JsonError::new(
                            shape::compile_refusal_message(&found),
                            &found,
                            source,
                        ))
                    },
                )
            };
            let (o, n) = (compile(&old.2, &old.0)?, compile(&new.2, &new.0)?);
            Some(aclc_compiler::diff::access_diff(
                aclc_compiler::diff::Side {
                    policy: &old.2,
                    source: &old.0,
                    compiled: &o,
                },
                aclc_compiler::diff::Side {
                    policy: &new.2,
                    source: &new.0,
                    compiled: &n,
                },
                &aclc_compiler::diff::DiffOptions::default(),
            ))
        }
        None => None,
    };
    Ok(to_text(&aclc_compiler::diff::document(
        &old.0,
        &new.0,
        &semantic,
        access.as_ref(),
    )))
}

pub(super) fn check(args: CheckArgs) -> Reply {
    let mut options = Options::default();
    let inventory = match &args.inventory {
        Some(inventory) => {
            let inventory = read_inventory(inventory)?;
            options.context = inventory.policy_context();
            Some(inventory)
        }
        None => None,
    };
    let result = check_policy(
        policy_name(args.name.as_deref()),
        args.policy.as_bytes(),
        &options,
        inventory.as_ref(),
    );
    Ok(to_text(&result.to_json()))
}

pub(super) fn fmt(args: FmtArgs) -> Reply {
    let limits = aclc_policy::Limits::default();
    let name = policy_name(args.name.as_deref());
    let (source, diagnostics) =
        aclc_policy::source_from_bytes(name, args.policy.as_bytes(), &limits);
    let invalid = |found: &[Diagnostic]| {
        let message = shape::first_error_message(found);
        Failure {
            kind: "invalid",
            message,
            diagnostics: Some(found.iter().map(|d| d.locate(&source)).collect()),
        }
    };
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(invalid(&diagnostics));
    }
    let formatted =
        aclc_policy::hujson::format(&source, &limits).map_err(|found| invalid(&found.0))?;
    #[derive(Serialize)]
    struct Answer {
        formatted: String,
        changed: bool,
    }
    let changed = formatted != source.text();
    Ok(to_text(&Answer { formatted, changed }))
}

/// Run the policy's `tests` and `sshTests` as `aclc test --format json` does: every
/// assertion, failing or not; refused (kind `refused`) only when the policy is invalid or
/// cannot be compiled.
pub(super) fn test(args: TestArgs) -> Reply {
    let TestArgs {
        policy,
        name,
        inventory,
    } = args;
    let Some(inventory) = inventory else {
        return Err(Failure::new("bad_request", "`test` needs `inventory`"));
    };
    let loaded = load_for_explain(&policy, name.as_deref(), &inventory)?;
    let report = aclc_compiler::run_tests(&loaded.policy, &loaded.compiled);
    Ok(to_text(&shape::TestReportJson::new(
        &report,
        &loaded.source,
    )))
}
