//! Runs the burst scenarios through Marie's Supervisor, the HPA and KEDA and prints
//! how long each takes to decide, to get a new executor working and to drain the
//! burst; with `--write`, puts the table into `sim/README.md` in place of the
//! committed one (the test `decision_delay::tests::the_committed_table_is_current`
//! fails until that is done after a change that moves the numbers).
//!
//! ```console
//! cargo run -p marie-sim --bin decision-delay             # print
//! cargo run -p marie-sim --bin decision-delay -- --write  # rewrite sim/README.md
//! ```

use std::process::ExitCode;

use marie_sim::decision_delay::{delays_all, markdown_table};
use marie_sim::table::DECISION_DELAY;

fn main() -> ExitCode {
    DECISION_DELAY.print_or_write(|| markdown_table(&delays_all()))
}
