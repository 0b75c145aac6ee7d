#!/usr/bin/env bash
# Shows chasm's main job on the example sessions in examples/sessions: VS Code writes a chat
# session's mutation log a few lines at a time, chasm captures each step into a fresh journal,
# then we read the history (log), look back in time (replay --at) and check it (verify); then
# sync with a VS Code-shaped folder, lose the live session there and restore it, and carry the
# whole history into a second journal (export, import).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
chasm() { ./target/release/chasm "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CHASM_JOURNAL="$work/journal"
chat="$work/User/workspaceStorage/demo/chatSessions"
mkdir -p "$chat"

# Each command is shown before its output: in bold on a terminal, as chasm colours its own.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ chasm %s%s\n' "$bold" "$*" "$plain"; chasm "$@"; }

# Two finished sessions: an on-disk .json and a panel export.
step capture examples/sessions/3b5e8f20-6c1d-4a9e-b7f2-0e4d6c8a1f35.json examples/sessions/rebase-onto-export.json

# A live .jsonl session, replayed as VS Code writes it: the snapshot, the question, the answer
# streaming in, a title, a second turn. Capture after each write.
log=examples/sessions/9c2d4e6f-8a0b-4c1d-9e3f-5a7b9c1d3e5f.jsonl
live="$chat/$(basename "$log")"
for lines in 1 3 5 6 8 10; do
    head -n "$lines" "$log" > "$live"
    step capture "$live"
done

step log 9c2d
step replay 9c2d --at 10 --format markdown
step replay 9c2d --format markdown
step log --entity session
step verify

# Sync the chat folder both ways, then lose the live session in VS Code and get it back.
step sync --root "$work/User"
rm "$live"
step sync --root "$work/User"
step status --all --root "$work/User"
step restore 9c2d --push --root "$work/User"
step diff 9c2d 10

# Carry the whole history into a second journal: identical.
step export -o "$work/history.jsonl"
CHASM_JOURNAL="$work/copy" step import "$work/history.jsonl"
CHASM_JOURNAL="$work/copy" step verify
