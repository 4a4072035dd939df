//! `phase1-curation`: Phase 1: curate F1 sources into a knowledge base, an instruction dataset and a benchmark.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("{}: not built yet (tracked in issue #3); nothing was run", phase1_curation::PHASE);
    ExitCode::from(2)
}
