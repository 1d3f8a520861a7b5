//! `sluice eval --pipeline FILE --questions Q.jsonl` and `sluice eval --history`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::EXIT_OK;
use crate::eval::{self, history};
use crate::inspect::OutputFormat;

pub enum What {
    Run(PathBuf, eval::Request),
    History,
}

pub async fn eval(
    pipeline: &Path,
    state: Option<&Path>,
    what: What,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    match what {
        What::History => {
            let runs = history::read(&plan)?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
                _ => print!("{}", history::render(&runs)),
            }
        }
        What::Run(questions, request) => {
            let report = eval::run(&plan, &questions, &request)
                .await
                .with_context(|| format!("eval of `{}`", plan.name))?;
            history::append(&plan, &report)?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                _ => print!("{}", report.render()),
            }
        }
    }
    Ok(EXIT_OK)
}
