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
use marie_sim::table;

fn main() -> ExitCode {
    let write = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => false,
        [flag] if flag == "--write" => true,
        _ => {
            eprintln!("usage: autoscale-table [--write]  (--write rewrites sim/README.md)");
            return ExitCode::from(2);
        }
    };
    let fresh = markdown_table(&compare_all());
    if !write {
        print!("{fresh}");
        return ExitCode::SUCCESS;
    }
    match rewrite(&fresh) {
        Ok(()) => {
            eprintln!("wrote the comparison table into {}", table::README);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Puts `fresh` into the README in place of the committed table.
fn rewrite(fresh: &str) -> Result<(), Box<dyn std::error::Error>> {
    let readme = std::fs::read_to_string(table::README)
        .map_err(|e| format!("cannot read {}: {e}", table::README))?;
    let updated = table::replaced(&readme, fresh)?;
    std::fs::write(table::README, updated)
        .map_err(|e| format!("cannot write {}: {e}", table::README))?;
    Ok(())
}
