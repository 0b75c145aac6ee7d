//! `chasm sync --watch`: sync in the background, the way people run sync tools.
//!
//! A round runs every interval, and sooner when VS Code touches a session file (file-system
//! notifications, debounced so that a response streaming in is one round, not hundreds). Each
//! round opens the journal only for its own length — other chasm commands can run in between —
//! and a round with nothing to do takes the no-op fast path without opening it at all. A round
//! that fails (the journal briefly held by another chasm, say) is tried again up to the
//! configured number of times, then reported and left to the next round: the watcher never
//! stops on its own. SIGINT and SIGTERM let the round under way finish, then exit 0.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Local;
use notify::Watcher;

use super::sync::{Args, print_report, round, summary_line};
use crate::config::Settings;
use crate::sync::Report;

/// How long the files must be quiet after a change before the round runs.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// The longest a burst of changes can put a round off.
const MAX_DEBOUNCE: Duration = Duration::from_secs(3);
/// How often a wait looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

pub fn run(journal_dir: &Path, args: &Args, settings: &Settings) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot handle signals")?;
    }
    let interval = Duration::from_secs(args.interval.unwrap_or(settings.interval));
    let provider = args.provider(settings);

    // Notifications for the session files in every chat folder; without them (an inotify
    // limit, say) the interval alone paces the rounds.
    let (tx, changes) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let session_file = |p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "json" || e == "jsonl");
            if event.paths.iter().any(session_file) {
                let _ = tx.send(());
            }
        }
    });
    match &mut watcher {
        Ok(w) => {
            for dir in &provider.dirs {
                if let Err(e) = w.watch(&dir.path, notify::RecursiveMode::NonRecursive) {
                    eprintln!("warning: {}: no change notifications ({e}); syncing every interval", dir.path.display());
                }
            }
        }
        Err(e) => eprintln!("warning: no change notifications ({e}); syncing every interval"),
    }

    let mut last_warnings: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(report) = round_with_retries(journal_dir, &provider, args, settings, &stop) {
            if report.warnings != last_warnings {
                for w in &report.warnings {
                    eprintln!("warning: {}", w.replace('\n', " "));
                }
                last_warnings = report.warnings.clone();
            }
            if report.appended > 0 || report.files_written > 0 {
                if args.json() {
                    print_report(&report, false, true)?;
                } else {
                    println!("{}  {}", Local::now().format("%H:%M:%S"), summary_line(&report, false));
                }
            }
        }
        wait(&changes, interval, &stop);
    }
    Ok(ExitCode::SUCCESS)
}

/// One round, tried again on failure; `None` when it failed every time (reported).
fn round_with_retries(
    journal_dir: &Path,
    provider: &crate::provider::vscode::VsCode,
    args: &Args,
    settings: &Settings,
    stop: &AtomicBool,
) -> Option<Report> {
    let mut tries = 0;
    loop {
        match round(journal_dir, provider, args, settings, &crate::progress::Progress::default()) {
            Ok(report) => return Some(report),
            Err(_) if tries < settings.max_retries && !stop.load(Ordering::Relaxed) => {
                tries += 1;
                sleep(Duration::from_millis(settings.retry_delay_ms), stop);
            }
            Err(e) => {
                eprintln!(
                    "warning: {}  round skipped after {} tries: {}",
                    Local::now().format("%H:%M:%S"),
                    tries + 1,
                    super::one_line(&e)
                );
                return None;
            }
        }
    }
}

/// Waits for the interval, a change (then for the files to go quiet), or a stop.
fn wait(changes: &mpsc::Receiver<()>, interval: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + interval;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match changes.recv_timeout(left.min(TICK)) {
            Ok(()) => {
                let started = Instant::now();
                while started.elapsed() < MAX_DEBOUNCE && changes.recv_timeout(DEBOUNCE).is_ok() {}
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left.min(TICK)),
        }
    }
}

fn sleep(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
}
