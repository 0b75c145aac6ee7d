//! Settings a user makes once: a JSON file, overridden by the environment, overridden by flags.
//!
//! The file (`--config FILE`, `$CHASM_CONFIG`, else the platform config dir, e.g.
//! `~/.config/chasm/config.json`) is one JSON object of the keys in [`KEYS`]. A key it does not
//! know, or a value of the wrong kind, is an error naming the file: a typo must not silently
//! fall back to a default that deletes or overwrites differently than the user meant.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::merge::Strategy;

/// The keys, as written in the file and on `chasm config set`.
pub const KEYS: &[&str] =
    &["strategy", "roots", "max_delete", "interval", "max_retries", "retry_delay_ms", "batch_size"];

/// The effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How sync settles conflicts.
    pub strategy: Strategy,
    /// VS Code storage to sync; empty: the usual User dirs.
    pub roots: Vec<PathBuf>,
    /// The most sessions a sync may delete on either side before it stops.
    pub max_delete: usize,
    /// `sync --watch`: seconds between rounds when no file changes sooner.
    pub interval: u64,
    /// `sync --watch`: how many times a round that failed is tried again before it is skipped.
    pub max_retries: u32,
    /// `sync --watch`: milliseconds between those tries.
    pub retry_delay_ms: u64,
    /// `import`: records appended (and made durable) per batch, so a large import holds little
    /// in memory at once and a stopped one keeps what it had appended.
    pub batch_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strategy: Strategy::AutoMerge,
            roots: Vec::new(),
            max_delete: 10,
            interval: 300,
            max_retries: 3,
            retry_delay_ms: 1000,
            batch_size: 50,
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// Settings with the source of each.
#[derive(Debug, Clone)]
pub struct Effective {
    pub settings: Settings,
    /// The file consulted (whether or not it exists).
    pub file: Option<PathBuf>,
    pub sources: Vec<(&'static str, Source)>,
}

impl Effective {
    /// Where `key` came from.
    pub fn source(&self, key: &str) -> &Source {
        self.sources.iter().find(|(k, _)| *k == key).map(|(_, s)| s).unwrap_or(&Source::Default)
    }

    fn set_source(&mut self, key: &'static str, source: Source) {
        self.sources.retain(|(k, _)| *k != key);
        self.sources.push((key, source));
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("${var}: {reason}")]
    Env { var: &'static str, reason: String },
    #[error("unknown key {0:?} (known: {known})", known = KEYS.join(", "))]
    UnknownKey(String),
    #[error("{key}: {reason}")]
    Value { key: String, reason: String },
}

/// The default config file: `$XDG_CONFIG_HOME/chasm/config.json` or
/// `~/.config/chasm/config.json`; `~/Library/Application Support/chasm/config.json` on macOS;
/// `%APPDATA%\chasm\config.json` on Windows.
pub fn default_path() -> Option<PathBuf> {
    Some(chasm_dir("XDG_CONFIG_HOME", &[".config"])?.join("config.json"))
}

/// chasm's folder in the platform's per-user place: `%APPDATA%\chasm` on Windows,
/// `~/Library/Application Support/chasm` on macOS, else `$XDG_VAR/chasm` (an absolute path) or
/// `~/<home_fallback…>/chasm`.
pub fn chasm_dir(xdg_var: &str, home_fallback: &[&str]) -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = if cfg!(windows) {
        env("APPDATA")?
    } else if cfg!(target_os = "macos") {
        env("HOME")?.join("Library").join("Application Support")
    } else {
        env(xdg_var)
            .filter(|p| p.is_absolute())
            .or_else(|| Some(home_fallback.iter().fold(env("HOME")?, |p, part| p.join(part))))?
    };
    Some(base.join("chasm"))
}

/// Parses one value for `key`.
fn parse_value(key: &str, value: &Value) -> Result<Setting, ConfigError> {
    let bad = |reason: &str| ConfigError::Value { key: key.to_owned(), reason: reason.to_owned() };
    match key {
        "strategy" => {
            let s = value.as_str().ok_or_else(|| bad("must be a string"))?;
            <Strategy as clap::ValueEnum>::from_str(s, false).map(Setting::Strategy).map_err(|_| {
                bad(&format!(
                    "{s:?} is not a strategy (local_wins, remote_wins, most_recent, keep_both, auto_merge, manual)"
                ))
            })
        }
        "roots" => {
            let items = value.as_array().ok_or_else(|| bad("must be a list of folders"))?;
            let roots = items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                        .ok_or_else(|| bad("must be a list of folders"))
                })
                .collect::<Result<_, _>>()?;
            Ok(Setting::Roots(roots))
        }
        "max_delete" => {
            let n = value.as_u64().ok_or_else(|| bad("must be a whole number, 0 or more"))?;
            Ok(Setting::MaxDelete(usize::try_from(n).map_err(|_| bad("is too large"))?))
        }
        "interval" => match value.as_u64() {
            Some(n) if (1..=86_400).contains(&n) => Ok(Setting::Interval(n)),
            _ => Err(bad("must be a number of seconds from 1 to 86400")),
        },
        "max_retries" => match value.as_u64() {
            Some(n) if n <= 100 => Ok(Setting::MaxRetries(n as u32)),
            _ => Err(bad("must be a whole number from 0 to 100")),
        },
        "retry_delay_ms" => match value.as_u64() {
            Some(n) if n <= 600_000 => Ok(Setting::RetryDelayMs(n)),
            _ => Err(bad("must be a number of milliseconds from 0 to 600000")),
        },
        "batch_size" => match value.as_u64() {
            Some(n) if (1..=1_000_000).contains(&n) => Ok(Setting::BatchSize(n as usize)),
            _ => Err(bad("must be a whole number from 1 to 1000000")),
        },
        other => Err(ConfigError::UnknownKey(other.to_owned())),
    }
}

enum Setting {
    Strategy(Strategy),
    Roots(Vec<PathBuf>),
    MaxDelete(usize),
    Interval(u64),
    MaxRetries(u32),
    RetryDelayMs(u64),
    BatchSize(usize),
}

impl Settings {
    fn apply(&mut self, setting: Setting) {
        match setting {
            Setting::Strategy(s) => self.strategy = s,
            Setting::Roots(r) => self.roots = r,
            Setting::MaxDelete(n) => self.max_delete = n,
            Setting::Interval(n) => self.interval = n,
            Setting::MaxRetries(n) => self.max_retries = n,
            Setting::RetryDelayMs(n) => self.retry_delay_ms = n,
            Setting::BatchSize(n) => self.batch_size = n,
        }
    }
}

/// The text a user types for `key`, as JSON: `chasm config set roots a:b` gives a list.
fn value_from_text(key: &str, text: &str) -> Value {
    match key {
        "roots" => Value::Array(
            std::env::split_paths(text)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| Value::from(p.to_string_lossy().into_owned()))
                .collect(),
        ),
        "max_delete" | "interval" | "max_retries" | "retry_delay_ms" | "batch_size" => {
            text.trim().parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(text))
        }
        _ => Value::from(text),
    }
}

fn read_file(path: &Path) -> Result<Option<Map<String, Value>>, ConfigError> {
    let bad = |reason: String| ConfigError::File { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(bad("must hold one JSON object".into())),
            Err(e) => Err(bad(format!("not valid JSON: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The environment variable of each key.
pub const ENV: [(&str, &str); 7] = [
    ("strategy", "CHASM_STRATEGY"),
    ("roots", "CHASM_ROOTS"),
    ("max_delete", "CHASM_MAX_DELETE"),
    ("interval", "CHASM_INTERVAL"),
    ("max_retries", "CHASM_MAX_RETRIES"),
    ("retry_delay_ms", "CHASM_RETRY_DELAY_MS"),
    ("batch_size", "CHASM_BATCH_SIZE"),
];

/// Defaults, then the file, then the environment ([`ENV`]; `CHASM_ROOTS` is a path list).
/// Flags are applied by the commands.
pub fn load(file: Option<&Path>) -> Result<Effective, ConfigError> {
    let file = file.map(Path::to_path_buf).or_else(default_path);
    let mut eff = Effective { settings: Settings::default(), file: file.clone(), sources: Vec::new() };
    if let Some(path) = &file {
        for (key, value) in read_file(path)?.unwrap_or_default() {
            let setting = parse_value(&key, &value)
                .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
            eff.settings.apply(setting);
            let key = KEYS.iter().find(|k| **k == key).copied().expect("a known key");
            eff.set_source(key, Source::File(path.clone()));
        }
    }
    for (key, var) in ENV {
        let Some(text) = std::env::var_os(var).filter(|v| !v.is_empty()) else { continue };
        let text = text.to_string_lossy();
        let setting = parse_value(key, &value_from_text(key, &text))
            .map_err(|e| ConfigError::Env { var, reason: e.to_string() })?;
        eff.settings.apply(setting);
        eff.set_source(key, Source::Env(var));
    }
    Ok(eff)
}

/// Sets `key` to `text` in the file, keeping its other keys; the file is replaced atomically.
pub fn set(path: &Path, key: &str, text: &str) -> Result<Value, ConfigError> {
    if !KEYS.contains(&key) {
        return Err(ConfigError::UnknownKey(key.to_owned()));
    }
    let value = value_from_text(key, text);
    parse_value(key, &value)?;
    let mut map = read_file(path)?.unwrap_or_default();
    map.insert(key.to_owned(), value.clone());
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(map)).expect("JSON serializes");
    bytes.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
    }
    crate::atomic::write(path, &bytes)
        .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_strict_and_set_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/config.json");
        assert_eq!(load(Some(&path)).unwrap().settings, Settings::default());
        set(&path, "strategy", "manual").unwrap();
        set(&path, "roots", "/a:/b").unwrap();
        let eff = load(Some(&path)).unwrap();
        assert_eq!(eff.settings.strategy, Strategy::Manual);
        assert_eq!(eff.settings.roots, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(eff.source("strategy"), &Source::File(path.clone()));
        assert_eq!(eff.source("max_delete"), &Source::Default);
        assert!(matches!(set(&path, "colour", "red"), Err(ConfigError::UnknownKey(_))));
        assert!(set(&path, "max_delete", "-1").is_err());
        assert!(set(&path, "strategy", "fastest").is_err());
        std::fs::write(&path, r#"{"strategy": "manual", "stratgy": "x"}"#).unwrap();
        assert!(load(Some(&path)).unwrap_err().to_string().contains("stratgy"));
        std::fs::write(&path, "[1]").unwrap();
        assert!(load(Some(&path)).is_err());
    }
}
