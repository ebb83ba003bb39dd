//! Runs every scenario through Marie's policy and the reference policies and prints
//! the comparison table; with `--write`, puts it into `sim/README.md` in place of the
//! committed one (the test `the_committed_table_is_current` fails until that is done
//! after a change that moves the numbers).
//!
//! ```console
//! cargo run -p marie-sim --bin autoscale-table             # print
//! cargo run -p marie-sim --bin autoscale-table -- --write  # rewrite sim/README.md
//! ```

use std::process::ExitCode;

use marie_sim::comparison::{compare_all, markdown_table};
use marie_sim::table::COMPARISON;

fn main() -> ExitCode {
    COMPARISON.print_or_write(|| markdown_table(&compare_all()))
}
