#!/usr/bin/env bash
# The main job end to end on the embedded default: the SQLite sample database in examples/
# is exported to an encrypted bundle, checked like a courier would (no key) and like the
# receiver would (with the key), imported into a new SQLite file, and compared with the
# original. Everything goes into a fresh directory printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin ferry
ferry="${CARGO_TARGET_DIR:-target}/debug/ferry"
work="$(mktemp -d "${TMPDIR:-/tmp}/ferry-quickstart.XXXXXX")"

step() { printf '\n== %s\n' "$*"; }

step "make a key (prints its key id)"
"$ferry" keygen "$work/ferry.key"

step "export examples/sample.db to an encrypted bundle"
"$ferry" export sqlite://examples/sample.db "$work/bundle" --key-file "$work/ferry.key"

step "verify without the key: sizes and SHA-256 of every file"
"$ferry" verify "$work/bundle"

step "verify with the key: decrypt and decode every part"
"$ferry" verify "$work/bundle" --key-file "$work/ferry.key"

step "inspect: what the bundle holds"
"$ferry" inspect "$work/bundle" --key-file "$work/ferry.key"

step "import into a new SQLite database"
"$ferry" import "$work/bundle" "sqlite://$work/copy.db" --key-file "$work/ferry.key"

step "import again: exactly once, so nothing to do"
"$ferry" import "$work/bundle" "sqlite://$work/copy.db" --key-file "$work/ferry.key"

step "compare source and copy"
"$ferry" compare sqlite://examples/sample.db "sqlite://$work/copy.db"

printf '\nquickstart OK: everything is in %s\n' "$work"
