//! Output for CI systems: GitHub workflow commands (annotations on the pull request), SARIF
//! 2.1.0 (code-scanning upload) and JUnit XML (test reports), built from the same located
//! diagnostics and test results the JSON output prints.

use aclc_compiler::policytest::TestReport;
use aclc_policy::diag::Located;
use aclc_policy::{Code, Diagnostic, Severity, Source};
use serde_json::{json, Value};

/// Where SARIF's rule help and the codes' table live.
const CODES_URI: &str = "https://github.com/aclc/aclc/blob/main/docs/diagnostics.md";

/// GitHub's escaping of a workflow command's message.
pub(crate) fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a workflow command's property value.
pub(crate) fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// One GitHub workflow command per diagnostic: `::error file=F,line=L,col=C,endLine=..,
/// endColumn=..,title=CODE::message`, warnings as `::warning`. The help, when there is one,
/// follows the message on its own line.
pub(crate) fn github_commands(diagnostics: &[Located]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let message = match &d.help {
            Some(help) => format!("{}\nhelp: {help}", d.message),
            None => d.message.clone(),
        };
        out.push_str(&format!(
            "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            escape_property(&d.file),
            d.line,
            d.column,
            d.end_line,
            d.end_column,
            escape_property(d.code.as_str()),
            escape_data(&message),
        ));
    }
    out
}

/// A SARIF 2.1.0 log of the diagnostics of every file: one run of the `aclc` tool, a rule per
/// code that occurs (with its meaning), a result per diagnostic.
pub(crate) fn sarif(files: &[(&Source, &[Diagnostic])]) -> impl serde::Serialize {
    let mut codes: Vec<Code> = files
        .iter()
        .flat_map(|(_, ds)| ds.iter().map(|d| d.code))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<Value> = codes
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "shortDescription": {"text": code.doc().meaning},
                "helpUri": CODES_URI,
            })
        })
        .collect();
    // Typed, not `json!`: a result as a tree of maps took 26 bytes of memory per byte of
    // output, 2.1 GB for the 92 MB log of 240,000 diagnostics (and 37 s at twice that).
    let results: Vec<SarifResult> = files
        .iter()
        .flat_map(|(source, ds)| ds.iter().map(move |d| (source, d)))
        .map(|(source, d)| {
            let at = d.locate(source);
            let mut message = at.message;
            if let Some(help) = &at.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            SarifResult {
                level: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                locations: [SarifLocation {
                    physical_location: SarifPhysical {
                        artifact_location: SarifArtifact { uri: at.file },
                        region: SarifRegion {
                            end_column: at.end_column,
                            end_line: at.end_line,
                            start_column: at.column,
                            start_line: at.line,
                        },
                    },
                }],
                message: SarifText { text: message },
                rule_id: d.code.as_str(),
                rule_index: codes.binary_search(&d.code).unwrap_or(0),
            }
        })
        .collect();
    sarif_log(CODES_URI, rules, results)
}

/// One SARIF result. Fields in the order `json!` wrote them (by name), so the log is the
/// same text.
#[derive(serde::Serialize)]
struct SarifResult {
    level: &'static str,
    locations: [SarifLocation; 1],
    message: SarifText,
    #[serde(rename = "ruleId")]
    rule_id: &'static str,
    #[serde(rename = "ruleIndex")]
    rule_index: usize,
}

#[derive(serde::Serialize)]
struct SarifLocation {
    #[serde(rename = "physicalLocation")]
    physical_location: SarifPhysical,
}

#[derive(serde::Serialize)]
struct SarifPhysical {
    #[serde(rename = "artifactLocation")]
    artifact_location: SarifArtifact,
    region: SarifRegion,
}

#[derive(serde::Serialize)]
struct SarifArtifact {
    uri: String,
}

#[derive(serde::Serialize)]
struct SarifRegion {
    #[serde(rename = "endColumn")]
    end_column: usize,
    #[serde(rename = "endLine")]
    end_line: usize,
    #[serde(rename = "startColumn")]
    start_column: usize,
    #[serde(rename = "startLine")]
    start_line: usize,
}

#[derive(serde::Serialize)]
struct SarifText {
    text: String,
}

/// A SARIF 2.1.0 log of one aclc run: the tool (with `information_uri` and its `rules`) and
/// the `results`, in the key order (by name) of the `json!` it replaces.
pub(crate) fn sarif_log<R: serde::Serialize>(
    information_uri: &str,
    rules: Vec<Value>,
    results: R,
) -> impl serde::Serialize {
    #[derive(serde::Serialize)]
    struct Log<R> {
        #[serde(rename = "$schema")]
        schema: &'static str,
        runs: [Run<R>; 1],
        version: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Run<R> {
        results: R,
        tool: Value,
    }
    Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        runs: [Run {
            results,
            tool: json!({"driver": {
                "name": "aclc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": information_uri,
                "rules": rules,
            }}),
        }],
        version: "2.1.0",
    }
}

/// XML character data and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// The policy's test report as JUnit XML: one test suite for the file, one test case per
/// assertion (named by what it tests, `classname` the file and line), a `<failure>` for each
/// failed one, the warning of a vacuous one in `<system-out>`.
pub(crate) fn junit(report: &TestReport, source: &Source) -> String {
    let results = &report.results;
    let failures = results.iter().filter(|r| !r.passed).count();
    let name = xml(source.name());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"aclc test\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        results.len()
    ));
    for result in results {
        let line = source.line_col(result.span.start as usize).line;
        out.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{name}:{line}\"",
            xml(&result.subject)
        ));
        if result.passed && result.warning.is_none() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        if !result.passed {
            let message = xml(&result.message(source));
            out.push_str(&format!(
                "      <failure message=\"{message}\" type=\"policy test\">{message}</failure>\n"
            ));
        }
        if let Some(warning) = &result.warning {
            out.push_str(&format!(
                "      <system-out>warning: {}</system-out>\n",
                xml(warning)
            ));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(escape_data("a%b\nc\rd"), "a%25b%0Ac%0Dd");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
        assert_eq!(
            xml("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(xml("esc\u{1b}"), "esc\\u{1b}");
    }
}
