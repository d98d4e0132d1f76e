#!/usr/bin/env bash
# `buf breaking` on proto/ (make proto-breaking; .ci/run): fails when a change to the
# protos would break a client built from the previous version, by the `FILE` rules of
# proto/buf.yaml (wire, JSON and generated-code compatibility).
#
# Compared against, in order:
#   1. the merge base with origin/main: everything this branch changed;
#   2. HEAD~1, where there is no origin/main or HEAD is that merge base (CI on a
#      fresh clone of main): the last commit's changes;
#   3. nothing, where HEAD has no parent (a clone of one commit): skipped, saying so.
# The working tree's proto/ is what is checked, so uncommitted edits count too.
#
#   scripts/proto-breaking.sh [REPO]     REPO: the checkout (default: this one)
# BUF (default: buf on PATH) names the binary.
set -euo pipefail

REPO=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
BUF=${BUF:-buf}
cd "$REPO"

base=
if upstream=$(git rev-parse -q --verify origin/main 2>/dev/null); then
    base=$(git merge-base HEAD "$upstream" || true)
    how="the merge base with origin/main"
fi
if [[ -z $base || $base == "$(git rev-parse HEAD)" ]]; then
    if ! base=$(git rev-parse -q --verify 'HEAD~1^{commit}' 2>/dev/null); then
        echo "proto-breaking: skipped: HEAD has no parent commit and there is no origin/main" \
            "(a clone of one commit?), so there is no earlier version of proto/ to compare with"
        exit 0
    fi
    how="the previous commit"
fi
if ! git cat-file -e "$base:proto/buf.yaml" 2>/dev/null; then
    echo "proto-breaking: skipped: proto/ has no buf.yaml at $how (${base:0:12}): nothing to compare with"
    exit 0
fi

# buf reads the repository itself; in a git worktree .git is a file, so point it at
# the common git directory, which holds every commit.
git_dir=$(cd "$(git rev-parse --git-common-dir)" && pwd)
echo "proto-breaking: proto/ against $how (${base:0:12})"
"$BUF" breaking proto --against "$git_dir#ref=$base,subdir=proto"
echo "proto-breaking: no breaking change"
