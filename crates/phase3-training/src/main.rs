//! `phase3-training`: Phase 3: LoRA, QLoRA and full-parameter fine-tuning.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("{}: not built yet (tracked in issue #4); nothing was run", phase3_training::PHASE);
    ExitCode::from(2)
}
