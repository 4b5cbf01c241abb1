//! App connectors: the `tailscale.com/app-connectors` node attribute read into its documented
//! shape, so that its tags are checked and counted as used and its domains and routes are
//! checked before a connector silently ignores them.
//!
//! Evidence: Tailscale KB "App connectors" (kb/1281) and "Syntax reference" (kb/1337,
//! `nodeAttrs`); the API client's `NodeAttrGrantApp` (`name`, `connectors`, `domains`,
//! `presetAppID`) and the client's `appctype.AppConnectorAttr`. The admin console writes
//! `routes` for preset apps. The control server passes the values to nodes unchanged and the
//! client decodes them leniently, so an unknown field is a warning, never an error.

use super::{closest, quote, Lowerer};
use crate::code::Code;
use crate::hujson::Value;
use crate::model::{AppConnector, Spanned};

/// The node attribute that configures app connectors.
pub(crate) const APP_CONNECTORS: &str = "tailscale.com/app-connectors";

/// The documented fields of an app connector entry.
pub(crate) const FIELDS: &[&str] = &["name", "connectors", "domains", "routes", "presetAppID"];

impl Lowerer<'_> {
    /// The app connector entries of a nodeAttrs `app` object (none when it has no
    /// `tailscale.com/app-connectors` key, or the object is malformed: `app_capabilities`
    /// reports that).
    pub(super) fn app_connectors(&mut self, app: &Value, path: &str) -> Vec<AppConnector> {
        let Some(members) = app.as_object() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members.iter().filter(|m| m.key.name == APP_CONNECTORS) {
            let Some(items) = m.value.as_array() else {
                continue;
            };
            let cap_path = super::key_path(path, APP_CONNECTORS);
            for (i, item) in items.iter().enumerate() {
                if let Some(c) = self.app_connector(item, &format!("{cap_path}[{i}]")) {
                    out.push(c);
                }
            }
        }
        out
    }

    fn app_connector(&mut self, v: &Value, path: &str) -> Option<AppConnector> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, path, "an object (name, connectors, domains)");
            return None;
        };
        let mut c = AppConnector {
            name: None,
            connectors: Vec::new(),
            domains: Vec::new(),
            routes: Vec::new(),
            preset_app_id: None,
            span: v.span,
        };
        for m in members {
            let field_path = format!("{path}.{}", m.key.name);
            match m.key.name.as_str() {
                "name" => c.name = self.trimmed(&m.value, &field_path),
                "presetAppID" => c.preset_app_id = self.trimmed(&m.value, &field_path),
                "connectors" => c.connectors = self.selectors(Some(&m.value), &field_path),
                "domains" => {
                    c.domains = self.strings(Some(&m.value), &field_path, "an array of domains");
                    for d in &c.domains {
                        self.app_domain(d);
                    }
                }
                "routes" => {
                    for r in self.strings(Some(&m.value), &field_path, "an array of prefixes") {
                        match crate::model::parse_prefix(&r.value).ok_or(()) {
                            Ok(net) => c.routes.push(Spanned::new(net, r.span)),
                            Err(_) => {
                                self.warning(
                                    Code::InvalidAppRoute,
                                    r.span,
                                    format!("{field_path}: {}: invalid prefix", quote(&r.value)),
                                )
                                .help = Some(
                                    "app connector routes are prefixes such as 192.0.2.0/24; a connector ignores anything else"
                                        .into(),
                                );
                            }
                        }
                    }
                }
                other => {
                    let span = self.key_span(&m.key);
                    let help = match closest(other, FIELDS) {
                        Some(k) => format!("did you mean {}?", quote(k)),
                        None => format!(
                            "app connector fields: {}",
                            FIELDS
                                .iter()
                                .map(|f| quote(f))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.warning(
                        Code::UnknownAppConnectorField,
                        span,
                        format!(
                            "unknown app connector field {}: aclc cannot verify it",
                            quote(other)
                        ),
                    )
                    .help = Some(help);
                }
            }
        }
        if c.name.is_none() {
            self.warning(
                Code::AppConnectorIncomplete,
                v.span,
                "this app connector has no \"name\"",
            )
            .help =
                Some("the admin console lists an app by its name; add \"name\": \"...\"".into());
        }
        if c.connectors.is_empty() {
            self.warning(
                Code::AppConnectorIncomplete,
                v.span,
                "this app connector has no \"connectors\": no device serves it",
            )
            .help = Some("add \"connectors\": [\"tag:connector\"]".into());
        }
        // A preset app (`presetAppID`) takes its domains and routes from the preset: the
        // admin console writes entries with no `domains` (Tailscale docs "Set up an app
        // connector", "Edit preset apps").
        if c.domains.is_empty() && c.routes.is_empty() && c.preset_app_id.is_none() {
            self.warning(
                Code::AppConnectorIncomplete,
                v.span,
                "this app connector has neither \"domains\" nor \"routes\": it routes nothing",
            )
            .help = Some(
                "add \"domains\": [\"example.com\", \"*.example.com\"], or a preset's \"presetAppID\""
                    .into(),
            );
        }
        Some(c)
    }

    /// A domain of an app connector: `example.com` or `*.example.com`.
    fn app_domain(&mut self, d: &Spanned<String>) {
        let name = d.value.strip_prefix("*.").unwrap_or(&d.value);
        let problem = if name.is_empty() {
            Some("an empty domain")
        } else if name.contains("://") {
            Some("a URL, not a domain")
        } else if name.contains('*') {
            Some("a wildcard that is not a leading \"*.\"")
        } else if name.contains(['/', ':', ' ', '@']) {
            Some("not a domain name")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.warning(
                Code::InvalidAppDomain,
                d.span,
                format!(
                    "app connector domain {} is {problem}: no traffic will match it",
                    quote(&d.value)
                ),
            )
            .help = Some(
                "write a domain (\"example.com\") or all of its subdomains (\"*.example.com\")"
                    .into(),
            );
        }
    }
}
