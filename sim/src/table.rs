//! The comparison table as committed in this crate's `README.md`: where it sits
//! between its markers, reading it, and putting a new one in its place. The test
//! `comparison::tests::the_committed_table_is_current` fails when it is stale; the
//! `autoscale-table` binary prints it, and rewrites it with `--write`.

use std::fmt;

/// This crate's `README.md`, which holds the table.
pub const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The line before the table.
const START: &str = "<!-- comparison table: start -->\n";
/// The line after the table.
const END: &str = "<!-- comparison table: end -->";

/// The README has lost the markers around the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingMarkers;

impl fmt::Display for MissingMarkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sim/README.md has no `{}` line followed by a `{END}` line: put them back \
             around the comparison table",
            START.trim_end()
        )
    }
}

impl std::error::Error for MissingMarkers {}

/// Where the table sits in `readme`: the byte range between the markers.
fn span(readme: &str) -> Result<std::ops::Range<usize>, MissingMarkers> {
    let from = readme.find(START).ok_or(MissingMarkers)? + START.len();
    let to = from + readme[from..].find(END).ok_or(MissingMarkers)?;
    Ok(from..to)
}

/// The table committed in `readme`.
pub fn committed(readme: &str) -> Result<&str, MissingMarkers> {
    span(readme).map(|range| &readme[range])
}

/// `readme` with `table` in place of the committed one.
pub fn replaced(readme: &str, table: &str) -> Result<String, MissingMarkers> {
    let range = span(readme)?;
    Ok(format!(
        "{}{table}{}",
        &readme[..range.start],
        &readme[range.end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_between_the_markers_is_read_and_replaced() {
        let readme = "intro\n<!-- comparison table: start -->\n| old |\n<!-- comparison table: end -->\nafter\n";
        assert_eq!(committed(readme), Ok("| old |\n"));
        let updated = replaced(readme, "| new |\n").expect("markers present");
        assert_eq!(
            updated,
            "intro\n<!-- comparison table: start -->\n| new |\n<!-- comparison table: end -->\nafter\n"
        );
        assert_eq!(committed("no markers"), Err(MissingMarkers));
    }
}
