#!/usr/bin/env python3
"""Every dependency of every workspace member is declared once, in the root
Cargo.toml's [workspace.dependencies], and every entry there is used by some member.

Run from the repository root (make deps). Exit 1, naming each offender, otherwise 0.
Unused dependencies inside a crate are cargo-machete's part of `make deps`.
"""
import sys
import tomllib

root = tomllib.load(open("Cargo.toml", "rb"))
declared = set(root["workspace"]["dependencies"])
used, problems = set(), []
for member in root["workspace"]["members"]:
    manifest = tomllib.load(open(f"{member}/Cargo.toml", "rb"))
    for section in ("dependencies", "dev-dependencies", "build-dependencies"):
        for name, spec in manifest.get(section, {}).items():
            used.add(name)
            if not (isinstance(spec, dict) and spec.get("workspace")):
                problems.append(f"{member}/Cargo.toml [{section}] {name}: not `workspace = true`")
problems += [f"Cargo.toml [workspace.dependencies] {name}: used by no member" for name in sorted(declared - used)]
for problem in problems:
    print(problem, file=sys.stderr)
print(f"check-deps: {len(declared)} workspace dependencies, {len(problems)} problems")
sys.exit(1 if problems else 0)
