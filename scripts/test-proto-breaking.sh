#!/usr/bin/env bash
# Proves scripts/proto-breaking.sh catches what it is for: in a throwaway git
# repository holding a copy of proto/, a renamed field and a renumbered field must
# fail `buf breaking`, an added message must pass, a change made before the merge
# base's descendants is found through origin/main (not just HEAD~1), and a clone of
# one commit is skipped with its reason. Run by .ci/run after make proto-breaking.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$ROOT/target/tools/bin:$PATH"
CHECK=$ROOT/scripts/proto-breaking.sh
FILE=proto/users/v1/users.proto

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$ROOT/proto" "$work/proto"
cd "$work"
git init -q -b main
git config user.email check@example.com
git config user.name check
git add proto
git commit -qm "the protos as they are"
first=$(git rev-parse HEAD)

passed=0
failed=0
# expect pass|fail NAME: runs the check on the repository as it stands.
expect() {
    local want=$1 name=$2 out rc=0
    out=$(bash "$CHECK" "$work" 2>&1) || rc=$?
    local got=pass
    ((rc == 0)) || got=fail
    if [[ $got == "$want" ]]; then
        passed=$((passed + 1))
        echo "ok    $name ($got)"
    else
        failed=$((failed + 1))
        echo "FAIL  $name: wanted $want, got $got"
    fi
    sed 's/^/      | /' <<<"$out"
}

# edit PYTHON_REGEX REPLACEMENT: changes the first scalar field of the file.
edit_first_field() {
    python3 - "$FILE" "$1" <<'PY'
import re, sys
path, what = sys.argv[1], sys.argv[2]
text = open(path).read()
field = re.compile(r"^(\s+)(string|int32|int64|bool|uint32) (\w+) = (\d+);", re.M)
m = field.search(text)
if not m:
    sys.exit(f"{path}: no scalar field to change")
indent, kind, name, number = m.groups()
new = {
    "rename": f"{indent}{kind} {name}_renamed = {number};",
    "renumber": f"{indent}{kind} {name} = {int(number) + 1000};",
}[what]
open(path, "w").write(text[: m.start()] + new + text[m.end():])
print(f"{what}: {m.group(0).strip()} -> {new.strip()}")
PY
}

commit() { git commit -qam "$1"; }

expect pass "a clone of one commit is skipped"
bash "$CHECK" "$work" | grep -q "skipped: HEAD has no parent" ||
    { failed=$((failed + 1)); echo "FAIL  the skip does not say why"; }

edit_first_field rename
commit "rename a field"
expect fail "a renamed field breaks clients"

git reset -q --hard "$first"
edit_first_field renumber
commit "renumber a field"
expect fail "a renumbered field breaks clients"

git reset -q --hard "$first"
cat >>"$FILE" <<'PROTO'

// Added by the check: a new message breaks nobody.
message BreakingCheckAddition {
  string note = 1;
}
PROTO
commit "add a message"
expect pass "an added message is compatible"

# A branch of two commits whose first one breaks: HEAD~1 alone would miss it, the
# merge base with origin/main does not.
git reset -q --hard "$first"
git update-ref refs/remotes/origin/main "$first"
edit_first_field rename
commit "rename a field"
echo "// unrelated" >>"$FILE"
commit "an unrelated edit"
expect fail "a break earlier on the branch is found from the merge base"

echo "proto-breaking self-test: $passed passed, $failed failed"
((failed == 0))
