#!/usr/bin/env bash
# Lays the offline RustSec advisory database where deny.toml's [advisories] expects it
# (target/advisory-dbs/advisory-db-<hash of the URL>, cargo-deny's layout) and prints the
# snapshot's date. The source is a git bundle beside the repository
# (ADVISORY_DB_BUNDLE, default ../shared/advisory-db/advisory-db.bundle); this machine
# cannot fetch the database from its own host. No bundle and no earlier copy: exit 1,
# never a silent pass.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUNDLE=${ADVISORY_DB_BUNDLE:-$ROOT/../shared/advisory-db/advisory-db.bundle}
# cargo-deny names the folder after the URL's last segment and an xxHash64 (seed
# 0xca80de71) of the lower-cased URL in deny.toml: "https://github.com/rustsec/advisory-db".
DB=$ROOT/target/advisory-dbs/advisory-db-3157b0e258782691

if [[ -f $BUNDLE ]]; then
    bundle_head=$(git bundle list-heads "$BUNDLE" | awk '$2 == "refs/heads/main" { print $1 }')
    [[ -n $bundle_head ]] || { echo "advisory-db: $BUNDLE has no main branch" >&2; exit 1; }
    if [[ $(git -C "$DB" rev-parse -q --verify HEAD 2>/dev/null || true) != "$bundle_head" ]]; then
        rm -rf "$DB"
        mkdir -p "$(dirname "$DB")"
        git -c init.defaultBranch=main clone -q --branch main "$BUNDLE" "$DB"
    fi
elif [[ ! -d $DB/.git ]]; then
    echo "advisory-db: no advisory database: $BUNDLE is missing and $DB was never laid" >&2
    exit 1
fi

# The snapshot's commit message names the upstream commit and its date; the commit's own
# date is when the snapshot was taken.
echo "advisory-db: $(git -C "$DB" log -1 --format='%s; snapshot taken %cs') in ${DB#"$ROOT"/}"
