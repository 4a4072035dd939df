//! `phase4-evaluation`: Phase 4: evaluate every fine-tuned variant the same way as the baseline.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("{}: not built yet (tracked in issue #5); nothing was run", phase4_evaluation::PHASE);
    ExitCode::from(2)
}
