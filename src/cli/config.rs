//! `chasm config`: the effective settings and where each came from; `chasm config set`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::config::{Effective, KEYS, Settings};

/// Show the effective settings and where each came from, or change the config file
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// One JSON object
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Set KEY to VALUE in the config file (strategy, roots as a path list, max_delete,
    /// interval, max_retries, retry_delay_ms, batch_size)
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

fn value_of(s: &Settings, key: &str) -> Value {
    match key {
        "strategy" => Value::from(s.strategy.to_string()),
        "roots" => s.roots.iter().map(|p| Value::from(p.to_string_lossy().into_owned())).collect(),
        "interval" => Value::from(s.interval),
        "max_retries" => Value::from(s.max_retries),
        "retry_delay_ms" => Value::from(s.retry_delay_ms),
        "batch_size" => Value::from(s.batch_size),
        _ => Value::from(s.max_delete),
    }
}

pub fn run(file: Option<&Path>, args: Args) -> Result<ExitCode> {
    if let Some(Action::Set { key, value }) = args.action {
        let path = file
            .map(Path::to_path_buf)
            .or_else(crate::config::default_path)
            .context("cannot find a config directory; pass --config FILE")?;
        let written = crate::config::set(&path, &key, &value)?;
        println!("{key} = {written} in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let eff: Effective = crate::config::load(file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let settings: serde_json::Map<String, Value> = KEYS
            .iter()
            .map(|k| {
                ((*k).to_owned(), json!({"value": value_of(&eff.settings, k), "source": eff.source(k).to_string()}))
            })
            .collect();
        writeln!(out, "{}", json!({"file": eff.file, "settings": settings}))?;
    } else {
        match &eff.file {
            Some(f) if f.exists() => writeln!(out, "config file: {}", f.display())?,
            Some(f) => writeln!(out, "config file: {} (not there yet; defaults apply)", f.display())?,
            None => writeln!(out, "config file: none")?,
        }
        let width = KEYS.iter().map(|k| k.len()).max().unwrap_or(0);
        for key in KEYS {
            let value = value_of(&eff.settings, key).to_string();
            writeln!(out, "{key:<width$} = {value:<24} ({})", eff.source(key))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
