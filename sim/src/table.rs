//! The generated tables committed in this crate's `README.md`: where each sits between
//! its markers, reading it, putting a new one in its place, and the command line of
//! the binaries that print or rewrite them. A test per table fails when it is stale
//! (`comparison::tests::the_committed_table_is_current`,
//! `decision_delay::tests::the_committed_table_is_current`).

use std::fmt;
use std::process::ExitCode;

/// This crate's `README.md`, which holds the tables.
pub const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// A table kept in the README between `<!-- NAME: start -->` and `<!-- NAME: end -->`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedTable {
    /// The name in its markers.
    pub name: &'static str,
    /// The binary that prints it, and rewrites it with `--write`.
    pub binary: &'static str,
}

/// Marie's policy against the references on every scenario (`comparison`).
pub const COMPARISON: CommittedTable = CommittedTable {
    name: "comparison table",
    binary: "autoscale-table",
};

/// How long each policy takes to act on a burst (`decision_delay`).
pub const DECISION_DELAY: CommittedTable = CommittedTable {
    name: "decision delay table",
    binary: "decision-delay",
};

/// The README has lost the markers around a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingMarkers {
    start: String,
    end: String,
}

impl fmt::Display for MissingMarkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sim/README.md has no `{}` line followed by a `{}` line: put them back \
             around the table",
            self.start.trim_end(),
            self.end
        )
    }
}

impl std::error::Error for MissingMarkers {}

impl CommittedTable {
    /// The line before the table and the text after it.
    fn markers(&self) -> (String, String) {
        (
            format!("<!-- {}: start -->\n", self.name),
            format!("<!-- {}: end -->", self.name),
        )
    }

    /// Where the table sits in `readme`: the byte range between the markers.
    fn span(&self, readme: &str) -> Result<std::ops::Range<usize>, MissingMarkers> {
        let (start, end) = self.markers();
        let missing = || MissingMarkers {
            start: start.clone(),
            end: end.clone(),
        };
        let from = readme.find(&start).ok_or_else(missing)? + start.len();
        let to = from + readme[from..].find(&end).ok_or_else(missing)?;
        Ok(from..to)
    }

    /// The table committed in `readme`.
    pub fn committed<'a>(&self, readme: &'a str) -> Result<&'a str, MissingMarkers> {
        self.span(readme).map(|range| &readme[range])
    }

    /// `readme` with `table` in place of the committed one.
    pub fn replaced(&self, readme: &str, table: &str) -> Result<String, MissingMarkers> {
        let range = self.span(readme)?;
        Ok(format!(
            "{}{table}{}",
            &readme[..range.start],
            &readme[range.end..]
        ))
    }

    /// Puts `fresh` into the README in place of the committed table.
    pub fn write(&self, fresh: &str) -> Result<(), Box<dyn std::error::Error>> {
        let readme =
            std::fs::read_to_string(README).map_err(|e| format!("cannot read {README}: {e}"))?;
        let updated = self.replaced(&readme, fresh)?;
        std::fs::write(README, updated).map_err(|e| format!("cannot write {README}: {e}"))?;
        Ok(())
    }

    /// The binary's `main`: prints the table `fresh` makes, or with `--write` puts it
    /// into the README.
    pub fn print_or_write(&self, fresh: impl FnOnce() -> String) -> ExitCode {
        let write = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
            [] => false,
            [flag] if flag == "--write" => true,
            _ => {
                eprintln!(
                    "usage: {} [--write]  (--write rewrites sim/README.md)",
                    self.binary
                );
                return ExitCode::from(2);
            }
        };
        let fresh = fresh();
        if !write {
            print!("{fresh}");
            return ExitCode::SUCCESS;
        }
        match self.write(&fresh) {
            Ok(()) => {
                eprintln!("wrote the {} into {README}", self.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    }

    /// Panics, saying how to regenerate it, unless the README holds `fresh`.
    #[cfg(test)]
    pub fn assert_current(&self, fresh: &str) {
        let readme = std::fs::read_to_string(README).expect("sim/README.md readable");
        let committed = self.committed(&readme).unwrap_or_else(|e| panic!("{e}"));
        let stale: Vec<&str> = committed
            .lines()
            .filter(|row| !fresh.contains(row))
            .collect();
        let current: Vec<&str> = fresh
            .lines()
            .filter(|row| !committed.contains(row))
            .collect();
        assert!(
            committed == fresh,
            "the {} in sim/README.md is stale; regenerate it with \
             `cargo run -p marie-sim --bin {} -- --write` and commit it.\n\
             committed rows not produced now:\n{}\nrows produced now:\n{}",
            self.name,
            self.binary,
            stale.join("\n"),
            current.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_between_the_markers_is_read_and_replaced() {
        let readme = "intro\n<!-- comparison table: start -->\n| old |\n<!-- comparison table: end -->\nafter\n";
        assert_eq!(COMPARISON.committed(readme), Ok("| old |\n"));
        let updated = COMPARISON
            .replaced(readme, "| new |\n")
            .expect("markers present");
        assert_eq!(
            updated,
            "intro\n<!-- comparison table: start -->\n| new |\n<!-- comparison table: end -->\nafter\n"
        );
        assert!(COMPARISON.committed("no markers").is_err());
        assert!(
            DECISION_DELAY.committed(readme).is_err(),
            "another table's markers"
        );
    }
}
