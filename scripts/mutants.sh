#!/usr/bin/env bash
# Mutation testing of a change: cargo-mutants alters the Rust code the change touched
# (one operator, condition or return value at a time) in the rules crates, `domain` and
# `application`, runs that crate's own tests against each mutant, and fails when a mutant
# survives them (behaviour nothing checks) or hangs.
#
#   scripts/mutants.sh            the change since the base (below), bounded in time
#   scripts/mutants.sh --full     every mutant of both crates (about 3 minutes for domain
#                                 and an hour or more for application on 2 cores)
#
# The change is the diff from $CHATBOX_MUTANTS_BASE when set; else from the merge base
# with origin/main when this is another branch; else from the parent commit (on main,
# the change just made). Only domain/ and application/ are mutated: their tests are
# their own (the adapters are checked by the end-to-end suites of another package, which
# a per-crate run does not run; their scores are measured and recorded in
# docs/testing.md). Exclusions, each with its reason, are in .cargo/mutants.toml.
#
# The run stops after $CHATBOX_MUTANTS_BUDGET seconds (default 600); mutants not reached
# by then are reported as untested, not as failures. Installs cargo-mutants (pinned) on
# first use under ${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools (about 2.5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chatbox-tools"
ROOT="$CACHE/cargo-mutants-$VERSION"
BUDGET="${CHATBOX_MUTANTS_BUDGET:-600}"
OUT="target/mutants"
CRATES=(domain application)

install() {
  if [[ ! -x "$ROOT/bin/cargo-mutants" ]]; then
    echo "installing cargo-mutants $VERSION"
    cargo install --quiet --locked --version "$VERSION" --root "$ROOT" cargo-mutants
  fi
  export PATH="$ROOT/bin:$PATH"
}
packages=()
for crate in "${CRATES[@]}"; do
  packages+=(--package "chatbox-$crate")
done

mkdir -p "$OUT"
if [[ "${1:-}" == "--full" ]]; then
  install
  exec cargo mutants "${packages[@]}" --output "$OUT"
fi

if [[ -n "${CHATBOX_MUTANTS_BASE:-}" ]]; then
  base="$CHATBOX_MUTANTS_BASE"
elif git rev-parse --verify --quiet origin/main >/dev/null &&
  [[ "$(git merge-base HEAD origin/main)" != "$(git rev-parse HEAD)" ]]; then
  base="$(git merge-base HEAD origin/main)"
elif git rev-parse --verify --quiet HEAD~1 >/dev/null; then
  base="HEAD~1"
else
  echo "mutants: no earlier commit to compare with; nothing to check"
  exit 0
fi
diff_file="$OUT/change.diff"
git diff "$base" -- "${CRATES[@]/%//src}" >"$diff_file"
if [[ ! -s "$diff_file" ]]; then
  echo "mutants: no change to ${CRATES[*]} since $(git rev-parse --short "$base"); nothing to check"
  exit 0
fi
install
echo "mutants: the change to ${CRATES[*]} since $(git rev-parse --short "$base"), within ${BUDGET}s"

results="$OUT/mutants.out"
# A run that finds no mutant writes no results: leave none from an earlier run.
rm -rf "$results" "$results.old"
status=0
timeout --signal=INT "$BUDGET" cargo mutants "${packages[@]}" --in-diff "$diff_file" --output "$OUT" || status=$?
count() {
  if [[ -f "$results/$1" ]]; then grep -c . "$results/$1" || true; else echo 0; fi
}
missed="$(count missed.txt)"
timeouts="$(count timeout.txt)"
echo "mutants: $(count caught.txt) caught, $missed missed, $timeouts hung, $(count unviable.txt) unviable"
if [[ "$missed" -gt 0 || "$timeouts" -gt 0 ]]; then
  echo "Mutants no test noticed (add a test that fails for each, or exclude it with its reason in .cargo/mutants.toml):" >&2
  for list in missed.txt timeout.txt; do
    if [[ -f "$results/$list" ]]; then cat "$results/$list" >&2; fi
  done
  exit 1
fi
case "$status" in
  0) ;;
  124 | 130)
    echo "mutants: the ${BUDGET}s budget ran out; the rest of the change was not mutated" >&2
    ;;
  *)
    echo "mutants: cargo mutants failed (exit $status)" >&2
    exit "$status"
    ;;
esac
