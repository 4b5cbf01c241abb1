//! `derpMap`: checked against the shape the control server decodes it into, so that a value
//! of the wrong type (a region ID written as a string, `Regions` as a number) is refused here
//! and not at upload.
//!
//! Evidence: Tailscale KB "Custom DERP servers" (kb/1118) and the client's
//! `tailcfg.DERPMap`, `DERPRegion` and `DERPNode`: typed Go fields, regions keyed by integer
//! region ID, `null` for a region to drop one of Tailscale's. A typed decode refuses a value
//! of the wrong type; `null` leaves any field at its zero value. Field names match in any
//! case, as Go's decoder matches them. The structs gain fields over time, so a field aclc
//! does not know is a warning (aclc cannot verify it), never an error.

use super::{closest, key_path, quote, Lowerer};
use crate::code::Code;
use crate::hujson::{Value, ValueKind};

/// What a field holds.
#[derive(Clone, Copy)]
enum Shape {
    Bool,
    /// A Go `int`: an integer literal that fits 64 bits.
    Int,
    /// A Go `float64`: any finite number.
    Float,
    Text,
    /// `Regions`: objects keyed by integer region ID.
    Regions,
    /// `Nodes`: an array of node objects.
    Nodes,
    /// `HomeParams`.
    HomeParams,
    /// `RegionScore`: numbers keyed by integer region ID.
    Scores,
}

/// `tailcfg.DERPMap`'s fields.
const MAP: &[(&str, Shape)] = &[
    ("Regions", Shape::Regions),
    ("OmitDefaultRegions", Shape::Bool),
    ("HomeParams", Shape::HomeParams),
];

/// `tailcfg.DERPHomeParams`'s fields.
const HOME_PARAMS: &[(&str, Shape)] = &[("RegionScore", Shape::Scores)];

/// `tailcfg.DERPRegion`'s fields.
const REGION: &[(&str, Shape)] = &[
    ("RegionID", Shape::Int),
    ("RegionCode", Shape::Text),
    ("RegionName", Shape::Text),
    ("Latitude", Shape::Float),
    ("Longitude", Shape::Float),
    ("Avoid", Shape::Bool),
    ("NoMeasureNoHome", Shape::Bool),
    ("Nodes", Shape::Nodes),
];

/// `tailcfg.DERPNode`'s fields.
const NODE: &[(&str, Shape)] = &[
    ("Name", Shape::Text),
    ("RegionID", Shape::Int),
    ("HostName", Shape::Text),
    ("CertName", Shape::Text),
    ("IPv4", Shape::Text),
    ("IPv6", Shape::Text),
    ("STUNPort", Shape::Int),
    ("STUNOnly", Shape::Bool),
    ("DERPPort", Shape::Int),
    ("InsecureForTests", Shape::Bool),
    ("STUNTestIP", Shape::Text),
    ("CanPort80", Shape::Bool),
];

impl Lowerer<'_> {
    /// Check a `derpMap` object (the caller checked it is one).
    pub(super) fn derp_map(&mut self, v: &Value) {
        self.derp_object(v, "derpMap", MAP);
    }

    /// Check the fields of an object (`null` aside) against `fields`.
    fn derp_object(&mut self, v: &Value, path: &str, fields: &[(&'static str, Shape)]) {
        if v.is_null() {
            return;
        }
        let Some(members) = v.as_object() else {
            self.wrong_type(v, path, "an object");
            return;
        };
        for m in members {
            let name = m.key.name.as_str();
            let field = fields
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name));
            let Some(&(known, shape)) = field else {
                let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
                let span = self.key_span(&m.key);
                let d = self.warning(
                    Code::UnknownDerpField,
                    span,
                    format!(
                        "unknown field {} in {path}; aclc could not verify that Tailscale accepts it",
                        quote(name)
                    ),
                );
                d.help = Some(match closest(name, &names) {
                    Some(k) => format!("did you mean {}?", quote(k)),
                    None => format!("known fields here: {}", names.join(", ")),
                });
                continue;
            };
            self.derp_value(&m.value, &format!("{path}.{known}"), shape);
        }
    }

    fn derp_value(&mut self, v: &Value, path: &str, shape: Shape) {
        if v.is_null() {
            return;
        }
        match shape {
            Shape::Bool if v.as_bool().is_none() => self.wrong_type(v, path, "true or false"),
            Shape::Text if v.as_str().is_none() => self.wrong_type(v, path, "a string"),
            Shape::Int => match &v.kind {
                ValueKind::Number(n) if n.as_i64().is_some() => {}
                ValueKind::Number(n) => self.wrong_type_number(v, path, &n.0, "an integer"),
                _ => self.wrong_type(v, path, "an integer"),
            },
            Shape::Float => match &v.kind {
                ValueKind::Number(n) if n.as_f64().is_finite() => {}
                ValueKind::Number(n) => self.wrong_type_number(v, path, &n.0, "a number"),
                _ => self.wrong_type(v, path, "a number"),
            },
            Shape::Regions => self.derp_keyed(v, path, |this, value, at| {
                this.derp_object(value, at, REGION)
            }),
            Shape::Scores => self.derp_keyed(v, path, |this, value, at| {
                this.derp_value(value, at, Shape::Float)
            }),
            Shape::HomeParams => self.derp_object(v, path, HOME_PARAMS),
            Shape::Nodes => match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.derp_object(item, &format!("{path}[{i}]"), NODE);
                    }
                }
                None => self.wrong_type(v, path, "an array of DERP nodes"),
            },
            Shape::Bool | Shape::Text => {}
        }
    }

    /// An object keyed by integer region ID, each value checked by `each`.
    fn derp_keyed(&mut self, v: &Value, path: &str, each: impl Fn(&mut Self, &Value, &str)) {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, path, "an object keyed by region ID");
            return;
        };
        for m in members {
            let at = key_path(path, &m.key.name);
            if m.key.name.parse::<i64>().is_err() {
                let span = self.key_span(&m.key);
                self.error(
                    Code::WrongType,
                    span,
                    format!(
                        "{path}: key {} is not a region ID (an integer)",
                        quote(&m.key.name)
                    ),
                )
                .help = Some(
                    "DERP regions are keyed by their numeric region ID, such as \"900\"".into(),
                );
                continue;
            }
            each(self, &m.value, &at);
        }
    }

    /// A number that does not fit where it is written.
    fn wrong_type_number(&mut self, v: &Value, path: &str, text: &str, expected: &str) {
        self.error(
            Code::WrongType,
            v.span,
            format!("{path} must be {expected}, got {text}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse_str, Options};

    /// Codes of the problems found in a policy, errors and warnings.
    fn codes(text: &str) -> (bool, Vec<String>) {
        let (_, parsed) = parse_str("policy.hujson", text, &Options::default());
        let names = |d: &[crate::Diagnostic]| -> Vec<String> {
            d.iter()
                .map(|d| d.code.to_string().replace("aclc::", ""))
                .collect()
        };
        match parsed {
            Ok(checked) => (true, names(&checked.warnings)),
            Err(diags) => (false, names(&diags.0)),
        }
    }

    #[test]
    fn documented_derp_maps_are_accepted() {
        // A custom region beside Tailscale's, regions dropped with `null`, trailing commas,
        // fields in another case (Go matches them so).
        let text = r#"{"derpMap": {
            "OmitDefaultRegions": false,
            "Regions": {
                "1": null,
                "900": {
                    "RegionID": 900, "RegionCode": "myderp", "RegionName": "My DERP",
                    "Nodes": [{"Name": "900a", "RegionID": 900, "HostName": "derp.example.com",
                               "IPv4": "203.0.113.5", "DERPPort": 443, "STUNPort": -1,
                               "InsecureForTests": false, "CanPort80": true}, null],
                },
            },
            "homeParams": {"RegionScore": {"900": 0.5, "1": 2}},
        }}"#;
        assert_eq!(codes(text), (true, Vec::new()));
    }

    #[test]
    fn wrong_types_in_a_derp_map_are_refused() {
        for text in [
            r#"{"derpMap": {"Regions": 5}}"#,
            r#"{"derpMap": {"Regions": {"900": {"RegionID": "abc"}}}}"#,
            r#"{"derpMap": {"Regions": {"900": {"RegionID": 1.5}}}}"#,
            r#"{"derpMap": {"Regions": {"900": {"RegionID": 1e999}}}}"#,
            r#"{"derpMap": {"Regions": {"900": {"Nodes": [{"DERPPort": "x"}]}}}}"#,
            r#"{"derpMap": {"Regions": {"900": {"Nodes": {"Name": "a"}}}}}"#,
            r#"{"derpMap": {"Regions": {"abc": {}}}}"#,
            r#"{"derpMap": {"OmitDefaultRegions": "yes"}}"#,
            r#"{"derpMap": {"HomeParams": {"RegionScore": {"1": "high"}}}}"#,
        ] {
            let (ok, codes) = codes(text);
            assert!(!ok, "{text} was accepted");
            assert_eq!(codes, ["wrong_type"], "{text}");
        }
    }

    #[test]
    fn unknown_derp_fields_are_warned_about_not_refused() {
        let (ok, codes) = codes(r#"{"derpMap": {"Regions": {"900": {"Bogus": 1}}, "Extra": {}}}"#);
        assert!(ok);
        assert_eq!(codes, ["unknown_derp_field", "unknown_derp_field"]);
    }
}
