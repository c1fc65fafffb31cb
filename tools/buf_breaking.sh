#!/usr/bin/env bash
# `make lint`'s contract check: buf breaking (the FILE rules of buf.yaml) on the
# contract in the work tree, against the latest release tag before HEAD or,
# with no tag, against HEAD's parent: so a fresh clone of main checks the
# commit it is on, and a work tree checks what it would add.
#
# Run from the buf workspace root (where buf.yaml is). BUF says how to run buf
# (default: the one `make install` put in node_modules).
set -euo pipefail

read -r -a buf <<<"${BUF:-npx --no-install buf}"

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "buf breaking: skipped: not a git work tree, so there is no earlier contract"
    exit 0
fi
if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
    # A shallow clone hides the parent: passing would check nothing.
    if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
        echo "buf breaking: this shallow clone lacks HEAD's parent; fetch it" \
            "(git fetch --deepen=1) or clone in full" >&2
        exit 1
    fi
    echo "buf breaking: skipped: HEAD is the first commit, so there is no earlier contract"
    exit 0
fi

against=HEAD~1
if tag=$(git describe --tags --abbrev=0 HEAD~1 2>/dev/null); then
    against=$tag
fi
commit=$(git rev-parse --verify "$against^{commit}")

# The earlier tree as plain files rather than buf's .git input, which needs
# .git to be a directory (in a linked worktree it is a file).
earlier=$(mktemp -d)
trap 'rm -rf "$earlier"' EXIT
git archive "$commit" | tar -x -C "$earlier"

echo "buf breaking: against $against (${commit:0:12})"
"${buf[@]}" breaking --against "$earlier"
