//! chasm's benchmark harness: every figure beside its peer, measured in the same run.
//!
//! `cargo bench --bench perf` runs the full workloads (1,000 sessions, a 1,000,000-event journal);
//! `cargo bench --bench perf -- --quick` runs them at a tenth of the size. Each timing is the
//! median of several runs; whole commands are timed as a user runs them (process start and the
//! journal's open included). It prints a Markdown report for BENCHMARKS.md.
//!
//! Peers: raw sled (the floor for appends: the same bytes, the same flush policy), reading the
//! files' bytes once (the floor for a sync), and git over the chat folder (what people use for
//! history today: a commit per sync round, `git log -- FILE`, `git show REV:FILE`, a packed repo).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chasm::diff::diff;
use chasm::fold::SessionState;
use chasm::journal::{ChangeType, EntityType, Journal, NewChange, OpenMode, Origin, SyncChange};
use chasm::session::Session;
use serde_json::{Value, json};

// The tests' helpers, for their deterministic generator.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{Rng, age};

struct Scale {
    sessions: usize,
    log_events: usize,
    session_events: usize,
    append_events: usize,
    runs: usize,
}

const WORDS: &[&str] = &[
    "the",
    "function",
    "returns",
    "a",
    "Result",
    "so",
    "you",
    "can",
    "use",
    "`?`",
    "to",
    "propagate",
    "errors",
    "iterator",
    "borrow",
    "checker",
    "lifetime",
    "struct",
    "impl",
    "trait",
    "async",
    "await",
    "tokio",
    "serde",
    "field",
    "value",
    "Here",
    "is",
    "an",
    "example:",
    "```rust",
    "```",
    "let",
    "mut",
    "match",
    "Some(x)",
    "None",
    "vector",
    "HashMap",
    "clone",
    "reference",
    "compile",
    "error",
    "E0502",
    "because",
    "of",
    "the",
    "loop",
];

fn prose(rng: &mut Rng, words: usize) -> String {
    let mut s = String::with_capacity(words * 7);
    for i in 0..words {
        if i > 0 {
            s.push(if rng.below(12) == 0 { '\n' } else { ' ' });
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// A request as VS Code stores it, with a response of about `words` words.
fn request(rng: &mut Rng, n: usize, words: usize) -> Value {
    let question = prose(rng, 12);
    json!({
        "requestId": format!("request_{:08x}-{n:04}", rng.next() as u32),
        "timestamp": 1_764_000_000_000u64 + n as u64 * 60_000,
        "message": {"text": question, "parts": [{"kind": "text", "text": question}]},
        "variableData": {"variables": []},
        "response": [{"value": prose(rng, words)}, {"kind": "inlineReference", "inlineReference": {"path": "/src/main.rs"}}],
        "result": {"timings": {"firstProgress": 800, "totalElapsed": 4000}, "metadata": {"modelMessageId": n}},
        "modelId": "copilot/gpt-4.1",
        "agent": {"id": "github.copilot.editsAgent", "extensionVersion": "0.37.1"},
    })
}

fn session(id: &str, requests: Vec<Value>) -> Value {
    json!({"version": 3, "sessionId": id, "creationDate": 1_764_000_000_000u64, "customTitle": format!("Session {id}"),
           "initialLocation": "panel", "requesterUsername": "ada", "responderUsername": "GitHub Copilot", "requests": requests})
}

/// A session's `.json` file as VS Code writes it: `JSON.stringify(session, undefined, 2)`
/// (`chatSessionStore.ts`), two-space indented, which is what a git repository over the chat
/// folder holds and `git show` prints. (A `.jsonl` log's lines are compact.)
fn vscode_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// Writes a session into a chat folder as VS Code does, a `.jsonl` log (`log`) or a `.json`
/// file, aged so that its fingerprint is trusted; returns its path.
fn write_session(chat: &Path, id: &str, v: &Value, log: bool) -> PathBuf {
    let path = if log {
        let p = chat.join(format!("{id}.jsonl"));
        std::fs::write(&p, format!("{}\n", json!({"kind": 0, "v": v}))).unwrap();
        p
    } else {
        let p = chat.join(format!("{id}.json"));
        std::fs::write(&p, vscode_json(v)).unwrap();
        p
    };
    age(&path);
    path
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs of a command that takes a few milliseconds (the no-op sync, `log -n 20`, `log
/// SESSION`, `replay`, `git show`) and of its peer: the median of a few is at the mercy of one
/// slow run.
const SHORT_RUNS: usize = 21;

/// Lets the kernel finish writing back what building a workload wrote (hundreds of megabytes
/// for the large journal), so that the writeback does not run under the timings that follow.
fn settle() {
    let _ = Command::new("sync").status();
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn time_runs(runs: usize, mut f: impl FnMut()) -> Duration {
    median((0..runs).map(|_| timed(&mut f)).collect())
}

/// Untimed runs before a short command is timed (as `hyperfine --warmup` does), for chasm
/// and its peer alike: the history part's commands are timed minutes after their files were
/// written, and the first runs read pages the machine has evicted meanwhile (this one pages
/// out file pages idle for a minute) — 40 ms, then ten runs still slower, in one run of the
/// harness, where later runs took 4.
const WARMUP_RUNS: usize = 5;

/// Short read-only commands timed side by side: [`WARMUP_RUNS`] untimed rounds, then
/// [`SHORT_RUNS`] rounds, each running every command once in turn; the median of each. Taken
/// in turns rather than one after the other, a slow spell of the machine (another guest on its
/// host, the kernel paging out) falls on each command alike: timed in blocks, one run of the
/// seventh round had every chasm command, even on the 1,000-event journal, 0.7–1.5 ms slower
/// than the same binary timed alone minutes later, and git's not.
///
/// The turns are run by a fresh, small process (this program again, with `--turns`), as a
/// shell would run them, not by the harness: a chasm command timed from the harness took
/// 0.35–0.9 ms longer than the same command timed, in the same minutes, from a small program
/// it started, for a reason not found (see BENCHMARKS.md). How much CPU the kernel's own
/// threads took during the timed turns is printed on stderr.
fn time_side_by_side<const N: usize>(what: &str, commands: [Command; N]) -> [Duration; N] {
    let spec: Vec<Value> = commands
        .iter()
        .map(|c| {
            let text = |s: &std::ffi::OsStr| s.to_str().expect("UTF-8 command lines").to_owned();
            let env: Vec<Value> = c.get_envs().map(|(k, v)| json!([text(k), v.map(text)])).collect();
            json!({"program": text(c.get_program()), "args": c.get_args().map(text).collect::<Vec<_>>(), "env": env})
        })
        .collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--turns", what, &Value::Array(spec).to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the turns of {what} failed");
    let nanos: Vec<u64> = serde_json::from_slice(&out.stdout).unwrap();
    std::array::from_fn(|i| Duration::from_nanos(nanos[i]))
}

/// `--turns WHAT SPEC`: runs the commands SPEC names (a JSON list of program, arguments and
/// environment changes) in turns as [`time_side_by_side`] says, and prints the median of
/// each in nanoseconds, as JSON.
fn run_turns(what: &str, spec: &str) {
    let spec: Vec<Value> = serde_json::from_str(spec).unwrap();
    let mut commands: Vec<Command> = spec
        .iter()
        .map(|c| {
            let mut cmd = Command::new(c["program"].as_str().unwrap());
            cmd.args(c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()));
            for kv in c["env"].as_array().unwrap() {
                match kv[1].as_str() {
                    Some(v) => cmd.env(kv[0].as_str().unwrap(), v),
                    None => cmd.env_remove(kv[0].as_str().unwrap()),
                };
            }
            cmd
        })
        .collect();
    for _ in 0..WARMUP_RUNS {
        commands.iter_mut().for_each(run);
    }
    let mut times: Vec<Vec<Duration>> = commands.iter().map(|_| Vec::with_capacity(SHORT_RUNS)).collect();
    let (start, before) = (Instant::now(), kernel_threads_cpu());
    for _ in 0..SHORT_RUNS {
        for (c, t) in commands.iter_mut().zip(&mut times) {
            t.push(timed(|| run(c)));
        }
    }
    let wall = start.elapsed();
    let mut busy: Vec<(Duration, String)> = kernel_threads_cpu()
        .into_iter()
        .map(|(pid, (name, after))| {
            let before = before.get(&pid).map_or(Duration::ZERO, |(_, t)| *t);
            (after.saturating_sub(before), name)
        })
        .filter(|(busy, _)| !busy.is_zero())
        .collect();
    busy.sort_unstable_by(|a, b| b.cmp(a));
    let total: Duration = busy.iter().map(|(t, _)| *t).sum();
    let most: Vec<String> = busy.iter().take(3).map(|(t, thread)| format!("{thread} {}", ms(*t))).collect();
    eprintln!(
        "{what}: the kernel's threads ran {} of CPU in the {:.2} s of timed turns ({:.0}% of one CPU){}",
        ms(total),
        wall.as_secs_f64(),
        100.0 * total.as_secs_f64() / wall.as_secs_f64(),
        if most.is_empty() { String::new() } else { format!(": {}", most.join(", ")) }
    );
    let medians: Vec<u64> = times.into_iter().map(|t| median(t).as_nanos() as u64).collect();
    println!("{}", Value::from(medians));
}

/// The name and CPU time so far of each of the kernel's own threads (kthreadd and its
/// children: RCU, DAMON, writeback, …) by pid, from `/proc`, to 10 ms; none where there is no
/// `/proc`. On this machine they took up to two fifths of a CPU while the history part was
/// timed, and a command of a few milliseconds sharing the CPUs with them is slowed
/// (BENCHMARKS.md). A thread's time is counted when it leaves the CPU, so over a fraction of
/// a second a burst that began before may show as more than the window held.
fn kernel_threads_cpu() -> std::collections::HashMap<String, (String, Duration)> {
    let mut threads = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name();
        if !pid.to_str().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (name) state ppid …`, the 14th and 15th fields user and system time in ticks of
        // 1/100 s.
        let (Some((_, rest)), Some((_, name))) = (stat.rsplit_once(')'), stat.split_once('(')) else { continue };
        let name = name.rsplit_once(')').map_or(name, |(n, _)| n);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if pid != "2" && fields.get(1) != Some(&"2") {
            continue;
        }
        let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        let pid = pid.to_string_lossy().into_owned();
        threads.insert(pid, (name.to_owned(), Duration::from_millis(10 * (ticks(11) + ticks(12)))));
    }
    threads
}

fn run(cmd: &mut Command) {
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "{cmd:?} failed");
}

fn chasm(journal: &Path, args: &[&str]) -> Command {
    let mut c = common::chasm_command();
    c.arg("--journal").arg(journal).args(args);
    c
}

fn git(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b");
    c
}

fn dir_size(path: &Path) -> u64 {
    walk(path).iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum()
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

struct Report(Vec<String>);
impl Report {
    fn row(&mut self, what: &str, chasm: String, peer: String, ratio: String, target: &str) {
        let line = format!("| {what} | {chasm} | {peer} | {ratio} | {target} |");
        println!("{line}");
        self.0.push(line);
    }

    /// A row of a journal's size beside git's, in MB with `decimals` places.
    fn size_row(&mut self, what: &str, journal: u64, git: u64, decimals: usize, target: &str) {
        let mb = |b: u64| format!("{:.*} MB", decimals, b as f64 / 1e6);
        let ratio = format!("{:.1}× git's size", journal as f64 / git as f64);
        self.row(what, mb(journal), mb(git), ratio, target);
    }

    /// A row of a chasm command's time beside `git status --porcelain`'s over the same folder.
    fn beside_git_status(&mut self, what: &str, chasm: Duration, git_status: Duration) {
        let ratio = format!("{:.2}× git's time", chasm.as_secs_f64() / git_status.as_secs_f64());
        self.row(what, ms(chasm), format!("{} (git status)", ms(git_status)), ratio, "");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------- appends

fn bench_appends(scale: &Scale, tmp: &Path, rep: &mut Report) {
    let mut rng = Rng(7);
    let changes: Vec<NewChange> = (0..scale.append_events)
        .map(|i| NewChange {
            session_id: format!("s{:04}", i % 97),
            change_type: ChangeType::Create,
            entity_type: EntityType::Message,
            entity_id: format!("r{i}"),
            timestamp: chrono::Utc::now(),
            origin: Origin::Remote,
            provider: "vscode".into(),
            payload: json!({"index": i / 97, "request": request(&mut rng, i, 120)}),
        })
        .collect();
    for batch in [1usize, 16, 256] {
        let n = if batch == 1 { scale.append_events / 8 } else { scale.append_events };
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        // Each run of chasm is followed by one of raw sled: both wait on the same disk, whose
        // fsyncs move by tens of percent from one minute to the next. Nine turns of a quarter
        // of a second each; three at batch 1, where a turn is a thousand fsyncs.
        let turns = if batch == 1 { 3 } else { 9 };
        for r in 0..turns {
            let dir = tmp.join(format!("append-{batch}-{r}"));
            let mut j = Journal::open(&dir, OpenMode::Create).unwrap();
            // The batches are made before the clock starts: what is timed is the append.
            let batches: Vec<Vec<NewChange>> = changes[..n].chunks(batch).map(<[NewChange]>::to_vec).collect();
            let t = Instant::now();
            let mut appended = Vec::new();
            for b in batches {
                appended.push(j.append(b).unwrap());
            }
            let elapsed = t.elapsed();
            if r == 0 {
                bytes.extend(appended.iter().flatten().map(SyncChange::encode));
            }
            ours.push(elapsed);
            drop(j);
            // Raw sled: the same bytes under the same keys, one flush and fsync per batch.
            let rdir = tmp.join(format!("raw-{batch}-{r}"));
            let db = sled::open(&rdir).unwrap();
            let tree = db.open_tree("log").unwrap();
            let file = std::fs::File::open(rdir.join("db")).unwrap();
            let t = Instant::now();
            for (c, chunk) in bytes.chunks(batch).enumerate() {
                let mut b = sled::Batch::default();
                for (k, v) in chunk.iter().enumerate() {
                    b.insert(&((c * batch + k) as u64).to_be_bytes()[..], v.as_slice());
                }
                tree.apply_batch(b).unwrap();
                db.flush().unwrap();
                file.sync_all().unwrap();
            }
            raw.push(t.elapsed());
        }
        // The ratio of each turn, chasm's and the raw sled run right after it: how far one
        // run's ratio of medians can be trusted on a disk whose fsyncs drift.
        let mut turns: Vec<f64> =
            ours.iter().zip(&raw).map(|(o, r)| 100.0 * r.as_secs_f64() / o.as_secs_f64()).collect();
        turns.sort_by(f64::total_cmp);
        let (ours, raw) = (median(ours), median(raw));
        let per = |d: Duration| n as f64 / d.as_secs_f64();
        rep.row(
            &format!("durable append, batch {batch} ({n} events)"),
            format!("{:.0} events/s", per(ours)),
            format!("{:.0} events/s (raw sled)", per(raw)),
            format!(
                "{:.0}% of raw (turns {:.0}–{:.0}%)",
                100.0 * per(ours) / per(raw),
                turns[0],
                turns[turns.len() - 1]
            ),
            if batch == 256 { "≥ 70%" } else { "" },
        );
    }
}

// ---------------------------------------------------------------- sync

fn bench_sync(scale: &Scale, tmp: &Path, rep: &mut Report) {
    let mut rng = Rng(11);
    let user = tmp.join("sync/User");
    let chat = user.join("workspaceStorage/0123abcd/chatSessions");
    std::fs::create_dir_all(&chat).unwrap();
    std::fs::write(chat.parent().unwrap().join("workspace.json"), r#"{"folder":"file:///home/ada/app"}"#).unwrap();
    let mut files = Vec::new();
    for i in 0..scale.sessions {
        // 10..=500 requests, most sessions short.
        let x = rng.below(1000) as f64 / 1000.0;
        let n = 10 + (x * x * x * 490.0) as usize;
        let reqs: Vec<Value> = (0..n)
            .map(|k| {
                let words = 60 + rng.below(200) as usize;
                request(&mut rng, k, words)
            })
            .collect();
        let id = format!("{:08x}-0000-4000-8000-{i:012}", rng.next() as u32);
        files.push(write_session(&chat, &id, &session(&id, reqs), i % 2 == 0));
    }
    let total: u64 = files.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let root = user.to_str().unwrap().to_owned();
    settle();
    let read_files = || {
        for f in &files {
            std::hint::black_box(std::fs::read(f).unwrap());
        }
    };
    let read_all = time_runs(scale.runs, read_files);

    let journal = tmp.join("sync/journal");
    let first = time_runs(1, || run(&mut chasm(&journal, &["sync", "--root", &root])));
    rep.row(
        &format!("first sync of {} sessions ({:.0} MB)", files.len(), total as f64 / 1e6),
        ms(first),
        format!("{} (read the bytes once)", ms(read_all)),
        format!("{:.1}× the read", first.as_secs_f64() / read_all.as_secs_f64()),
        "",
    );
    // The sync after the first finds everything in step and writes the note that the no-op
    // path reads: it is not a no-op, so it is not timed. The first sync's journal (hundreds of
    // megabytes) is flushed before the timing, so that the kernel writing it back does not run
    // under either measure.
    run(&mut chasm(&journal, &["sync", "--root", &root]));
    settle();
    let noop_sync = || run(&mut chasm(&journal, &["sync", "--root", &root]));
    // Back to back, as a sync every few seconds on an idle machine runs; then each right after
    // reading every file, its caches cold, as on a busy one.
    let noop = time_runs(SHORT_RUNS, noop_sync);
    let read_beside = time_runs(SHORT_RUNS, read_files);
    let (mut cold, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..SHORT_RUNS {
        reads.push(timed(read_files));
        cold.push(timed(noop_sync));
    }
    let (cold, read_between) = (median(cold), median(reads));
    for (what, ours, read, target) in
        [("", noop, read_beside, "≤ 10%"), (", each right after reading all the files", cold, read_between, "")]
    {
        rep.row(
            &format!("no-op sync of {} sessions{what}", files.len()),
            ms(ours),
            format!("{} (read the bytes once)", ms(read)),
            format!("{:.1}% of the read", 100.0 * ours.as_secs_f64() / read.as_secs_f64()),
            target,
        );
    }

    // The files captured, as README's first example does, into a journal of their own, then
    // captured again with nothing changed: what a capture run over and over (by hand, or by a
    // cron job) costs. Its journal is removed after, so that no size row counts it.
    let captured = tmp.join("sync/captured");
    let all: Vec<&str> = files.iter().map(|f| f.to_str().expect("UTF-8 paths")).collect();
    let capture = || run(&mut chasm(&captured, &[&["capture"][..], &all].concat()));
    capture();
    settle();
    let again = time_runs(SHORT_RUNS, capture);
    let read_beside = time_runs(SHORT_RUNS, read_files);
    rep.row(
        &format!("`chasm capture` of the {} files again, nothing changed", files.len()),
        ms(again),
        format!("{} (read the bytes once)", ms(read_beside)),
        format!("{:.1}% of the read", 100.0 * again.as_secs_f64() / read_beside.as_secs_f64()),
        "",
    );
    std::fs::remove_dir_all(&captured).unwrap();

    // git over the same folder: one commit of everything, then a commit per round.
    run(&mut git(&user, &["init", "-q"]));
    run(&mut git(&user, &["add", "-A"]));
    run(&mut git(&user, &["commit", "-qm", "first"]));
    // What a user of either runs to see where things stand, nothing changed since: `chasm
    // status` (a dry-run sync, then each session's place in VS Code) and `git status`.
    let [status, git_status] = time_side_by_side(
        "status",
        [chasm(&journal, &["status", "--root", &root]), git(&user, &["status", "--porcelain"])],
    );
    rep.beside_git_status(
        &format!("`chasm status` of {} sessions, nothing changed (vs `git status`)", files.len()),
        status,
        git_status,
    );
    // The round a background sync runs most: one session's log gains a request while the
    // user chats, and `sync --watch` runs once the files have been quiet for its debounce
    // (300 ms; here 350). Its fixed costs, not the files, are most of it.
    // Its own random numbers: the rounds below write what they wrote before this was added.
    let mut chat_rng = Rng(13);
    let log = files.iter().find(|f| f.extension().is_some_and(|e| e == "jsonl")).expect("a .jsonl session");
    // Each is followed by the round `sync --watch` runs next, the files as that round left
    // them: a full sync that finds nothing and writes the no-op's note (which the next round
    // that records anything drops first, as it does under a watcher), beside `git status`.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut quiet, mut quiet_git) = (Vec::new(), Vec::new());
    for round in 0..SHORT_RUNS {
        let line = json!({"kind": 2, "k": ["requests"], "v": [request(&mut chat_rng, 2000 + round, 150)]});
        std::fs::OpenOptions::new().append(true).open(log).unwrap().write_all(format!("{line}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(350));
        ours.push(timed(|| run(&mut chasm(&journal, &["sync", "--root", &root]))));
        theirs.push(timed(|| {
            run(&mut git(&user, &["add", "-A"]));
            run(&mut git(&user, &["commit", "-qm", "round"]));
        }));
        quiet.push(timed(|| run(&mut chasm(&journal, &["sync", "--root", &root]))));
        assert!(journal.join(chasm::in_step::FILE).exists(), "the sync after a round wrote no note");
        quiet_git.push(timed(|| run(&mut git(&user, &["status", "--porcelain"]))));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    rep.row(
        "sync round, 1 session's log changed, 350 ms after (as `sync --watch` runs)",
        ms(ours),
        format!("{} (git add -A && git commit)", ms(theirs)),
        format!("{:.1}× faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        "",
    );
    let (quiet, quiet_git) = (median(quiet), median(quiet_git));
    rep.beside_git_status(
        "the sync after it, nothing changed (writes the no-op's note; vs `git status`)",
        quiet,
        quiet_git,
    );
    let changed = (scale.sessions / 100).max(1);
    // Rounds in which `changed` of `files` gain a request, each synced by chasm and committed
    // by git: the medians of each. As many as the short commands get: a round takes a tenth
    // of a second, and git's commit alone moved by 10 ms between runs over five.
    let mut rounds = |files: &[PathBuf], first: usize| {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in first..first + SHORT_RUNS {
            for k in 0..changed {
                let f = &files[(round * changed + k * 7) % files.len()];
                if f.extension().is_some_and(|e| e == "jsonl") {
                    let line = json!({"kind": 2, "k": ["requests"], "v": [request(&mut rng, 1000 + round, 150)]});
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(f)
                        .unwrap()
                        .write_all(format!("{line}\n").as_bytes())
                        .unwrap();
                } else {
                    let mut v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
                    v["requests"].as_array_mut().unwrap().push(request(&mut rng, 1000 + round, 150));
                    std::fs::write(f, vscode_json(&v)).unwrap();
                }
            }
            let t = Instant::now();
            run(&mut chasm(&journal, &["sync", "--root", &root]));
            ours.push(t.elapsed());
            let t = Instant::now();
            run(&mut git(&user, &["add", "-A"]));
            run(&mut git(&user, &["commit", "-qm", "round"]));
            theirs.push(t.elapsed());
        }
        (median(ours), median(theirs))
    };
    let (ours, theirs) = rounds(&files, 0);
    rep.row(
        &format!("sync round, {changed} of {} sessions changed (1%)", files.len()),
        ms(ours),
        format!("{} (git add -A && git commit)", ms(theirs)),
        format!("{:.1}× faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        "≥ 10× faster",
    );
    // Every session VS Code deletes stays in the journal: the same rounds over what is left
    // after it deleted 30% of them (recorded by one sync, committed by git).
    let (gone, kept) = files.split_at(files.len() * 3 / 10);
    for f in gone {
        std::fs::remove_file(f).unwrap();
    }
    run(&mut chasm(&journal, &["sync", "--root", &root, "--max-delete", &gone.len().to_string()]));
    run(&mut git(&user, &["add", "-A"]));
    run(&mut git(&user, &["commit", "-qm", "deleted"]));
    let (ours, theirs) = rounds(kept, SHORT_RUNS);
    rep.row(
        &format!("the same, {} sessions left and {} deleted in VS Code before", kept.len(), gone.len()),
        ms(ours),
        format!("{} (git add -A && git commit)", ms(theirs)),
        format!("{:.1}× faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        "",
    );
    // What all that history takes: the journal (closed, its write-ahead log folded in) beside
    // the repository of the same commits, each as it grew and after its gc (`git gc
    // --aggressive` took three minutes more here for the same size).
    let (loose_journal, loose_git) = (dir_size(&journal), dir_size(&user.join(".git/objects")));
    let chasm_gc = time_runs(1, || run(&mut chasm(&journal, &["gc"])));
    let git_gc = time_runs(1, || run(&mut git(&user, &["gc", "-q"])));
    let (journal_bytes, pack_bytes) = (dir_size(&journal), dir_size(&user.join(".git/objects")));
    let rounds = 1 + 3 * SHORT_RUNS;
    rep.size_row(
        &format!("journal size after the first sync and the {rounds} rounds above (vs git's objects)"),
        loose_journal,
        loose_git,
        1,
        "",
    );
    rep.size_row("the same after `chasm gc` (vs after `git gc`)", journal_bytes, pack_bytes, 1, "≤ 1×");
    rep.row(
        "`chasm gc` of that journal (vs `git gc` of that repository)",
        ms(chasm_gc),
        ms(git_gc),
        format!("{:.1}× faster", git_gc.as_secs_f64() / chasm_gc.as_secs_f64()),
        "",
    );
}

// ---------------------------------------------------------------- workspaces: a user dir as it is

/// A user dir laid out as VS Code keeps one: many workspaces, each with a few sessions and a
/// `state.vscdb` beside its chat folder holding VS Code's session index among its other
/// keys. `chasm status` reads each index to tell the sessions VS Code hides; the sync
/// workload above is one workspace without one.
fn bench_workspaces(scale: &Scale, tmp: &Path, rep: &mut Report) {
    const WORKSPACES: usize = 60;
    /// Keys of a workspace's `state.vscdb` beside the index, where VS Code keeps the state
    /// of its views and editors: a few hundred (here each of 50 to 800 bytes).
    const OTHER_KEYS: usize = 300;
    let per_workspace = (scale.sessions * 15 / 1000).max(2);
    let mut rng = Rng(17);
    let user = tmp.join("workspaces/User");
    for w in 0..WORKSPACES {
        // Named as VS Code names them: 32 hex digits.
        let dir = user.join(format!("workspaceStorage/{:016x}{w:016x}", rng.next()));
        let chat = dir.join("chatSessions");
        std::fs::create_dir_all(&chat).unwrap();
        std::fs::write(dir.join("workspace.json"), json!({"folder": format!("file:///home/ada/p{w}")}).to_string())
            .unwrap();
        let mut entries = serde_json::Map::new();
        for i in 0..per_workspace {
            let n = 3 + rng.below(38) as usize;
            let reqs: Vec<Value> = (0..n)
                .map(|k| {
                    let words = 40 + rng.below(80) as usize;
                    request(&mut rng, k, words)
                })
                .collect();
            let id = format!("{:08x}-0000-4000-8000-{:06}{i:06}", rng.next() as u32, w);
            write_session(&chat, &id, &session(&id, reqs), i % 2 == 0);
            // VS Code has dropped each workspace's first session from its list.
            if i > 0 {
                let entry = json!({"sessionId": id, "title": format!("Session {id}"), "lastMessageDate": 1_764_000_000_000u64 + i as u64,
                                   "initialLocation": "panel", "hasPendingEdits": false, "isEmpty": false});
                entries.insert(id, entry);
            }
        }
        let db = rusqlite::Connection::open(dir.join("state.vscdb")).unwrap();
        db.execute_batch("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB); BEGIN").unwrap();
        let mut insert = db.prepare("INSERT INTO ItemTable (key, value) VALUES (?1, ?2)").unwrap();
        for k in 0..OTHER_KEYS {
            let words = 5 + rng.below(120) as usize;
            let value = json!({"state": prose(&mut rng, words), "n": k}).to_string();
            insert.execute(rusqlite::params![format!("workbench.view.{k:03}.state"), value]).unwrap();
        }
        let index = json!({"version": 1, "entries": entries}).to_string();
        insert.execute(rusqlite::params![chasm::provider::vscode::index::INDEX_KEY, index]).unwrap();
        drop(insert);
        db.execute_batch("COMMIT").unwrap();
    }
    let root = user.to_str().unwrap().to_owned();
    let journal = tmp.join("workspaces/journal");
    // The first sync, then the one that finds everything in step and writes the notes.
    run(&mut chasm(&journal, &["sync", "--root", &root]));
    run(&mut chasm(&journal, &["sync", "--root", &root]));
    run(&mut git(&user, &["init", "-q"]));
    run(&mut git(&user, &["add", "-A"]));
    run(&mut git(&user, &["commit", "-qm", "first"]));
    settle();
    let [status, git_status] = time_side_by_side(
        "status of the workspaces",
        [chasm(&journal, &["status", "--root", &root]), git(&user, &["status", "--porcelain"])],
    );
    rep.beside_git_status(
        &format!(
            "`chasm status` of {} sessions in {WORKSPACES} workspaces, each with VS Code's index (vs `git status`)",
            WORKSPACES * per_workspace
        ),
        status,
        git_status,
    );
    // The sync after a recorded change, which finds nothing and writes the no-op's note: the
    // note removed by hand, as every change to the journal removes it.
    let (mut quiet, mut quiet_git) = (Vec::new(), Vec::new());
    for _ in 0..SHORT_RUNS {
        std::fs::remove_file(journal.join(chasm::in_step::FILE)).unwrap();
        quiet.push(timed(|| run(&mut chasm(&journal, &["sync", "--root", &root]))));
        assert!(journal.join(chasm::in_step::FILE).exists(), "the sync wrote no note");
        quiet_git.push(timed(|| run(&mut git(&user, &["status", "--porcelain"]))));
    }
    let (quiet, quiet_git) = (median(quiet), median(quiet_git));
    rep.beside_git_status(
        "the sync that writes the no-op's note there, after a change (vs `git status`)",
        quiet,
        quiet_git,
    );
}

// ---------------------------------------------------------------- history: log, replay, size

/// The events of one session streaming `events` changes (requests added, their responses
/// streamed in), and the session file after each event, as VS Code would hold it.
fn streaming_session(id: &str, events: usize, rng: &mut Rng) -> (Vec<NewChange>, Vec<String>) {
    let mut state: Option<SessionState> = None;
    let mut changes = Vec::new();
    let mut files = Vec::new();
    let mut current = Session::from_value(session(id, vec![])).unwrap();
    let mut seq = 0u64;
    let per_request = 50;
    while changes.len() < events {
        let k = changes.len() / per_request;
        let mut v = current.to_value();
        let reqs = v["requests"].as_array_mut().unwrap();
        if changes.len() % per_request == 0 || reqs.is_empty() {
            reqs.push(request(rng, k, 10));
        } else {
            let last = reqs.last_mut().unwrap();
            let text = last["response"][0]["value"].as_str().unwrap().to_owned();
            last["response"][0]["value"] = Value::from(format!("{text} {}", prose(rng, 4)));
        }
        let next = Session::from_value(v).unwrap();
        for c in diff(id, state.as_ref(), &next) {
            let change = c.into_change(id, chrono::Utc::now(), Origin::Remote, "vscode");
            seq += 1;
            state
                .get_or_insert_with(SessionState::default)
                .apply(&SyncChange::seal(change.clone(), seq, [0; 32]))
                .unwrap();
            changes.push(change);
            files.push(vscode_json(&next.to_value()));
        }
        current = next;
    }
    changes.truncate(events);
    files.truncate(events);
    (changes, files)
}

fn bench_history(scale: &Scale, tmp: &Path, rep: &mut Report) {
    let mut rng = Rng(23);
    let big_id = "big00000-0000-4000-8000-000000000000";
    let small_id = "small000-0000-4000-8000-000000000000";
    let (big, big_files) = streaming_session(big_id, scale.session_events, &mut rng);
    let (small, _) = streaming_session(small_id, 100, &mut rng);

    // A journal of `total` events: the sessions given spread through filler traffic of many
    // other sessions, each at its length's share of the picks (their events left over after
    // `total`, at the end).
    let build = |dir: &Path, total: usize, spread: &[&[NewChange]], rng: &mut Rng| {
        let mut j = Journal::open(dir, OpenMode::Create).unwrap();
        let mut left: Vec<std::slice::Iter<NewChange>> = spread.iter().map(|s| s.iter()).collect();
        let mut batch = Vec::new();
        let mut n = 0;
        while n < total {
            let mut pick = rng.below(total as u64) as usize;
            let mut change = None;
            for (session, events) in spread.iter().zip(&mut left) {
                if pick < session.len() {
                    change = events.next().cloned();
                    break;
                }
                pick -= session.len();
            }
            let change = change.unwrap_or_else(|| NewChange {
                session_id: format!("filler-{:04}", rng.below(1000)),
                change_type: ChangeType::Update,
                entity_type: EntityType::Metadata,
                entity_id: "customTitle".into(),
                timestamp: chrono::Utc::now(),
                origin: Origin::Remote,
                provider: "vscode".into(),
                payload: json!({"value": prose(rng, 8), "position": 0}),
            });
            batch.push(change);
            n += 1;
            if batch.len() == 10_000 {
                j.append(std::mem::take(&mut batch)).unwrap();
            }
        }
        for events in left {
            batch.extend(events.cloned());
        }
        j.append(batch).unwrap();
    };
    let large = tmp.join("history/large");
    let t = Instant::now();
    build(&large, scale.log_events, &[&big, &small], &mut rng);
    eprintln!("built a {}-event journal in {:?}", scale.log_events, t.elapsed());
    // Of 1,000 events: the short session and fillers (the long session alone is 10,000).
    let tiny = tmp.join("history/tiny");
    build(&tiny, 1_000, &[&small], &mut Rng(5));
    settle();

    let [large_page, tiny_page] =
        time_side_by_side("log -n 20", [chasm(&large, &["log", "-n", "20"]), chasm(&tiny, &["log", "-n", "20"])]);
    rep.row(
        &format!("`chasm log -n 20`, {} events vs 1,000", scale.log_events),
        ms(large_page),
        format!("{} (1,000 events)", ms(tiny_page)),
        format!("{:.2}×", large_page.as_secs_f64() / tiny_page.as_secs_f64()),
        "≤ 2×",
    );
    let full = time_runs(1, || run(&mut chasm(&large, &["log"])));
    rep.row(
        &format!("`chasm log` full scan, {} events", scale.log_events),
        ms(full),
        "".into(),
        format!("{:.0} events/s", scale.log_events as f64 / full.as_secs_f64()),
        "",
    );

    // git: the big session's file after each of its events, one commit each.
    let repo = tmp.join("history/git");
    std::fs::create_dir_all(&repo).unwrap();
    run(&mut git(&repo, &["init", "-q"]));
    let mut stream = String::new();
    for (i, content) in big_files.iter().enumerate() {
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{}\ncommitter b <b@b> {} +0000\ndata 1\nx\n{}M 100644 inline chat.json\ndata {}\n{content}\n",
            i + 1,
            1_764_000_000 + i,
            if i > 0 { format!("from :{i}\n") } else { String::new() },
            content.len()
        ));
    }
    let mut fi = git(&repo, &["fast-import", "--quiet"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    fi.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    assert!(fi.wait().unwrap().success());
    run(&mut git(&repo, &["checkout", "-q", "main"]));
    run(&mut git(&repo, &["gc", "-q", "--aggressive"]));
    settle();

    let [ours, theirs] =
        time_side_by_side("log SESSION", [chasm(&large, &["log", big_id]), git(&repo, &["log", "--", "chat.json"])]);
    rep.row(
        &format!("`chasm log SESSION`, {} of its events in {} (vs `git log -- FILE`)", big.len(), scale.log_events),
        ms(ours),
        ms(theirs),
        format!("{:.1}× faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        "≥ 10× faster",
    );
    // Its newest lines, as a user looks at a session first: a page of the newest runs and
    // records, against git's newest commits of the file.
    let [ours, theirs] = time_side_by_side(
        "log -n 20 SESSION",
        [chasm(&large, &["log", "-n", "20", big_id]), git(&repo, &["log", "-n", "20", "--", "chat.json"])],
    );
    rep.row(
        "`chasm log -n 20 SESSION`, the same session (vs `git log -n 20 -- FILE`)",
        ms(ours),
        ms(theirs),
        format!("{:.2}× git's time", ours.as_secs_f64() / theirs.as_secs_f64()),
        "",
    );
    let big_seqs: Vec<u64> = {
        let j = Journal::open(&large, OpenMode::Existing).unwrap();
        j.session_seqs(big_id).unwrap()
    };
    let mid_seq = big_seqs[big_seqs.len() / 2].to_string();
    // The same point named two ways: by its commit's hash, a direct address as a seq is, and
    // relative to the branch, which git resolves by walking the history back.
    let back = format!("main~{}", big_files.len() - big_files.len() / 2 - 1);
    let hash = git(&repo, &["rev-parse", &back]).output().unwrap().stdout;
    let hash_rev = format!("{}:chat.json", String::from_utf8(hash).unwrap().trim());
    let back_rev = format!("{back}:chat.json");
    let [replay_mid, show_hash, show_back, replay_last, replay_small] = time_side_by_side(
        "replay",
        [
            chasm(&large, &["replay", big_id, "--at", &mid_seq]),
            git(&repo, &["show", &hash_rev]),
            git(&repo, &["show", &back_rev]),
            chasm(&large, &["replay", big_id]),
            chasm(&large, &["replay", small_id]),
        ],
    );
    rep.row(
        "`chasm replay --at` the middle of it (vs `git show HASH:FILE`)",
        ms(replay_mid),
        ms(show_hash),
        format!("{:.2}× git's time", replay_mid.as_secs_f64() / show_hash.as_secs_f64()),
        "≤ 1×",
    );
    rep.row(
        "`chasm replay --at` the middle of it (vs `git show main~N:FILE`)",
        ms(replay_mid),
        ms(show_back),
        format!("{:.2}× git's time", replay_mid.as_secs_f64() / show_back.as_secs_f64()),
        "",
    );
    rep.row(
        &format!("`chasm replay` latest, {}-event session vs a 100-event one", big.len()),
        ms(replay_last),
        format!("{} (100 events)", ms(replay_small)),
        format!("{:.2}×", replay_last.as_secs_f64() / replay_small.as_secs_f64()),
        "≤ 2×",
    );
    rep.row(
        &format!("`chasm replay --at` middle, {}-event session vs a 100-event one", big.len()),
        ms(replay_mid),
        format!("{} (100 events)", ms(replay_small)),
        format!("{:.2}×", replay_mid.as_secs_f64() / replay_small.as_secs_f64()),
        "≤ 2×",
    );

    // Size: a journal holding only the big session's history, beside the packed git repo.
    let alone = tmp.join("history/alone");
    {
        let mut j = Journal::open(&alone, OpenMode::Create).unwrap();
        for chunk in big.chunks(1000) {
            j.append(chunk.to_vec()).unwrap();
        }
    }
    let journal_bytes = dir_size(&alone);
    let pack_bytes = dir_size(&repo.join(".git/objects"));
    let large_bytes = dir_size(&large);
    rep.size_row(
        &format!("journal size, the {}-event session alone (vs packed git)", big.len()),
        journal_bytes,
        pack_bytes,
        2,
        "≤ 1×",
    );
    rep.row(
        &format!("journal bytes per event ({} events)", scale.log_events),
        format!("{:.0} B", large_bytes as f64 / (scale.log_events + big.len() + small.len()) as f64),
        format!("{:.0} MB in all", large_bytes as f64 / 1e6),
        "".into(),
        "",
    );

    // What every sync round, `status` and `conflicts` reads of a history (a dry-run sync:
    // `conflicts` alone) once a sync has noted what it found of each session: none was ever
    // synced anywhere (as sessions captured from outside VS Code's storage are), and without
    // the note each would be folded from its first record. Last, so that the syncs' notes are
    // in no size above.
    let user = tmp.join("history/vscode/User");
    std::fs::create_dir_all(user.join("globalStorage/emptyWindowChatSessions")).unwrap();
    let user = user.to_str().unwrap();
    for journal in [&large, &tiny] {
        run(&mut chasm(journal, &["sync", "--quiet", "--root", user]));
    }
    settle();
    let [large_survey, tiny_survey] = time_side_by_side(
        "conflicts",
        [chasm(&large, &["conflicts", "--root", user]), chasm(&tiny, &["conflicts", "--root", user])],
    );
    rep.row(
        &format!("`chasm conflicts` after a sync, {} events of sessions never synced vs 1,000", scale.log_events),
        ms(large_survey),
        format!("{} (1,000 events)", ms(tiny_survey)),
        format!("{:.2}×", large_survey.as_secs_f64() / tiny_survey.as_secs_f64()),
        "",
    );
}

/// The workloads' directory: removed at the end unless kept.
enum Kept {
    Temp(tempfile::TempDir),
    Path(PathBuf),
}

impl Kept {
    fn path(&self) -> &Path {
        match self {
            Kept::Temp(t) => t.path(),
            Kept::Path(p) => p,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, what, spec] = &args[..]
        && flag == "--turns"
    {
        return run_turns(what, spec);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale { sessions: 100, log_events: 100_000, session_events: 10_000, append_events: 2048, runs: 5 }
    } else {
        Scale { sessions: 1_000, log_events: 1_000_000, session_events: 10_000, append_events: 8192, runs: 5 }
    };
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    // CHASM_BENCH_KEEP=1 leaves the workloads behind (the path is printed) for profiling.
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("CHASM_BENCH_KEEP").is_some() {
        eprintln!("workloads kept in {}", tmp.path().display());
    }
    let tmp = if std::env::var_os("CHASM_BENCH_KEEP").is_some() { Kept::Path(tmp.keep()) } else { Kept::Temp(tmp) };
    let mut rep = Report(Vec::new());
    println!("| measure | chasm | peer | ratio | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    if want("append") {
        bench_appends(&scale, tmp.path(), &mut rep);
    }
    if want("sync") {
        bench_sync(&scale, tmp.path(), &mut rep);
    }
    if want("workspaces") {
        bench_workspaces(&scale, tmp.path(), &mut rep);
    }
    if want("history") {
        bench_history(&scale, tmp.path(), &mut rep);
    }
}
