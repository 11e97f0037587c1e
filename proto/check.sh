#!/usr/bin/env bash
# Checks the auth.v1 contract (proto/auth/v1) the way CI does:
#
#   1. `buf lint` with the rules in buf.yaml (and its documented exceptions);
#   2. `buf breaking` against the last released contract, the commit named in proto/released:
#      a rename, a renumbering, a removed field or RPC, a changed type or package option fails.
#
#   bash proto/check.sh
#
# buf comes from npm, pinned in proto/package.json (installed into proto/node_modules by
# `npm ci` the first time, or when the pin changes); everything else is offline. The baseline is
# read from this clone's git history, so a shallow clone needs `git fetch --unshallow` first.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

for tool in git node npm; do
    command -v "$tool" >/dev/null || { echo "proto/check.sh: $tool is not installed" >&2; exit 1; }
done

buf=$here/node_modules/.bin/buf
pinned=$(node -p "require('$here/package.json').devDependencies['@bufbuild/buf']")
if [[ ! -x $buf ]] || [[ $("$buf" --version 2>/dev/null) != "$pinned" ]]; then
    echo "==> installing buf $pinned (npm ci in proto/)"
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

echo "==> buf lint"
"$buf" lint

baseline=$(grep -v '^#' "$here/released" | grep -m1 .)
if ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
    echo "proto/check.sh: the released contract's commit $baseline (proto/released) is not in" \
        "this clone; a shallow clone needs \`git fetch --unshallow\`" >&2
    exit 1
fi
released=$(mktemp -d)
trap 'rm -rf "$released"' EXIT
git archive "$baseline" proto/auth | tar -x -C "$released"

echo "==> buf breaking against the released contract (${baseline:0:12}, proto/released)"
"$buf" breaking --against "$released/proto"

echo "==> the contract passes lint and is compatible with ${baseline:0:12}"
