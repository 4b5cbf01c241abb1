//! Ratchet lists: committed files of case ids that must keep passing (regorus
//! `tests/opa.passing`). A list only grows: `ACLC_UPDATE_RATCHET=1` adds the newly passing
//! ids and never removes one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A ratchet file: one case id per line, sorted, no duplicates; blank lines and `#` comments
/// are ignored.
#[derive(Debug)]
pub struct Ratchet {
    path: PathBuf,
    listed: BTreeSet<String>,
}

impl Ratchet {
    /// The ratchet `testdata/conformance/<file_name>`, read (a missing file lists nothing).
    /// Panics unless the ids are sorted and without duplicates.
    pub fn open(file_name: &str) -> Ratchet {
        Ratchet::at(super::conformance_dir().join(file_name))
    }

    /// The ratchet at `path`; see [`Ratchet::open`].
    pub fn at(path: PathBuf) -> Ratchet {
        let listed = read_ids(&path);
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            listed,
            sorted,
            "{} must be sorted, without duplicates",
            path.display()
        );
        Ratchet {
            path,
            listed: listed.into_iter().collect(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids the file lists.
    pub fn listed(&self) -> &BTreeSet<String> {
        &self.listed
    }

    /// The listed ids that are not in `passing`, in order.
    pub fn regressions(&self, passing: &BTreeSet<String>) -> Vec<&String> {
        self.listed
            .iter()
            .filter(|id| !passing.contains(*id))
            .collect()
    }

    /// The ids of `passing` the file does not list yet, in order.
    pub fn newly_passing<'p>(&self, passing: &'p BTreeSet<String>) -> Vec<&'p String> {
        passing
            .iter()
            .filter(|id| !self.listed.contains(*id))
            .collect()
    }

    /// Print the newly passing ids; with `ACLC_UPDATE_RATCHET=1`, add them to the file (a
    /// listed id that fails stays listed, and fails the harness), otherwise say how to.
    pub fn report_and_update(&self, passing: &BTreeSet<String>) {
        let new = self.newly_passing(passing);
        if new.is_empty() {
            return;
        }
        println!(
            "{} newly passing case(s), not yet in {}:",
            new.len(),
            self.path.display()
        );
        for id in &new {
            println!("    {id}");
        }
        if !update_requested() {
            println!("rerun with ACLC_UPDATE_RATCHET=1 to add them");
            return;
        }
        let updated: BTreeSet<&String> = self.listed.iter().chain(new.iter().copied()).collect();
        let text: String = updated.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(&self.path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.path.display()));
        println!(
            "added {} ids to {} ({} in all)",
            new.len(),
            self.path.display(),
            updated.len()
        );
    }
}

/// Whether `ACLC_UPDATE_RATCHET=1` asks the harnesses to add newly passing ids.
pub fn update_requested() -> bool {
    std::env::var_os("ACLC_UPDATE_RATCHET").is_some_and(|v| v == "1")
}

/// The ids in a ratchet file, as listed; none when it does not exist.
fn read_ids(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a directory of the test's own, removed when the guard drops (also when the
    /// test panics), so test runs leave nothing in the temporary directory.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str, text: &str) -> (Scratch, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "aclc-testkit-{}-{}",
            std::process::id(),
            name.replace('.', "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        (Scratch(dir), path)
    }

    #[test]
    fn ids_comments_and_differences() {
        let (_a, a) = scratch("a.passing", "# header\n\na\nb\n");
        let ratchet = Ratchet::at(a);
        assert_eq!(ratchet.listed().len(), 2);
        let passing: BTreeSet<String> = ["b", "c"].map(String::from).into();
        assert_eq!(ratchet.regressions(&passing), ["a"]);
        assert_eq!(ratchet.newly_passing(&passing), ["c"]);
        let (_b, b) = scratch("b.passing", "");
        let missing = Ratchet::at(b.with_file_name("none.passing"));
        assert!(missing.listed().is_empty());
    }

    #[test]
    #[should_panic(expected = "must be sorted, without duplicates")]
    fn unsorted_lists_are_refused() {
        let (_c, c) = scratch("c.passing", "b\na\n");
        Ratchet::at(c);
    }

    #[test]
    fn the_committed_ratchets_read() {
        for name in ["check.passing", "compile.passing", "compiler-lib.passing"] {
            assert!(Ratchet::open(name).listed().len() > 400, "{name}");
        }
    }
}
