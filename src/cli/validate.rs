//! `sluice validate FILE...`

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK};

/// Print every error of every file; exit 2 if any.
pub fn validate(files: &[PathBuf]) -> u8 {
    let mut failed = false;
    for file in files {
        match crate::spec::load_file(file) {
            Ok(plan) => {
                let stages: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
                let sinks: Vec<&str> = plan.sinks.iter().map(|s| s.name.as_str()).collect();
                println!(
                    "{}: ok: `{}` {} → [{}] → [{}]",
                    file.display(),
                    plan.name,
                    plan.source.kind,
                    stages.join(", "),
                    sinks.join(", ")
                );
            }
            Err(diags) => {
                failed = true;
                eprintln!("{}", crate::telemetry::secrets::scrub(&diags.to_string()));
            }
        }
    }
    if failed {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}
