#!/usr/bin/env python3
"""Checks that firstcall's modules form layers (ARCHITECTURE.md): a top-level module of src/ may
use (`crate::<module>`) only modules of its own layer or a lower one, and none may form an import
cycle. Exits 1 naming each offending file and path; a module missing from LAYERS is an error too,
so a new module is placed on purpose.

Usage: scripts/check-layers.py [SRC_DIR]   (run from the project root; default src)
"""
import os
import re
import sys

# Lowest first. Same-layer imports are allowed; the cycle check below keeps them acyclic.
LAYERS = [
    ("foundation", ["clock", "domain", "config", "background", "telemetry", "metrics", "links", "security"]),
    ("database", ["db", "audit", "reps", "people", "sessions", "config_versions"]),
    ("engine", ["engine"]),
    ("domain services", ["intake", "proposals", "recap", "mail", "crm"]),
    ("workflows", ["workflow", "retention"]),
    ("surfaces", ["app", "http", "pages", "openapi"]),
    ("composition root", ["startup", "cli", "reload"]),
]
LEVEL = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}

src = sys.argv[1] if len(sys.argv) > 1 else "src"
path_re = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
group_re = re.compile(r"use\s+crate::\{([^;]*)\}", re.S)
tests_re = re.compile(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{.*", re.S)

problems = []
edges = {}
for root, _, files in os.walk(src):
    for f in sorted(files):
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "main"):
            continue
        if top not in LEVEL:
            problems.append(f"{path}: module '{top}' has no layer; add it to LAYERS in scripts/check-layers.py and to ARCHITECTURE.md")
            continue
        text = tests_re.sub("", open(path, encoding="utf-8").read())
        used = set(path_re.findall(text))
        for group in group_re.findall(text):
            used.update(re.findall(r"(?:^|[,{]\s*)([a-z_][a-z0-9_]*)", group))
        for dep in sorted(used - {top, "self", "super"}):
            if dep not in LEVEL:
                continue
            edges.setdefault(top, set()).add(dep)
            if LEVEL[dep] > LEVEL[top]:
                problems.append(
                    f"{path}: {top} ({LAYERS[LEVEL[top]][0]}) uses crate::{dep} ({LAYERS[LEVEL[dep]][0]}), a higher layer"
                )

# Import cycles among the top-level modules (Tarjan's strongly connected components).
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


for v in sorted(LEVEL):
    if v not in index:
        visit(v)
for comp in sccs:
    problems.append("import cycle among: " + ", ".join(comp))

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"layers OK: {sum(len(e) for e in edges.values())} dependencies between {len(edges)} modules, all downward or within a layer, no cycle")
