#!/usr/bin/env python3
"""cmake/check_exports.py - does a shared library export exactly the API of its headers?

    check_exports.py --nm NM --clang CLANG --library libcapheap.so \\
        --include DIR [--include DIR ...] [--cflag=FLAG ...]

Every .h under the first --include directory (the installed headers) is parsed by clang
(its JSON syntax tree; the other directories only help resolve includes, e.g. the generated
capheap/config.h). The functions and objects they declare with external linkage (not static,
not inline) are the API. Then, with nm -D:
  - every API name must be defined and exported, or referenced by the library as undefined
    (soc_memory_regions, the trace hooks: the program defines those);
  - every exported definition must be an API name (names starting with '_' belong to the
    toolchain and are ignored).
cmake/capheap.map is what makes the second rule hold; this check keeps it in step with the
headers. A parser, not a regular expression, reads the headers, so comments, macros and
conditional declarations count as the compiler sees them. Exit status 0 when both hold.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def header_api(clang, include_dirs, cflags):
    """Names with external linkage declared in the headers under include_dirs[0]."""
    root = os.path.realpath(include_dirs[0])
    headers = sorted(os.path.relpath(os.path.join(d, f), root)
                     for d, _, files in os.walk(root) for f in files if f.endswith(".h"))
    with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as tu:
        tu.write("".join('#include "%s"\n' % h for h in headers))
    try:
        cmd = [clang, "-fsyntax-only", "-Xclang", "-ast-dump=json"] + cflags
        cmd += ["-I" + os.path.realpath(d) for d in include_dirs] + [tu.name]
        ast = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    finally:
        os.unlink(tu.name)

    # clang writes a location's file only when it differs from the previous location written,
    # in document order: follow every location in that order to know each declaration's file.
    current = {"file": None}

    def follow(loc):
        if "file" in loc:
            current["file"] = loc["file"]
        for key in ("spellingLoc", "expansionLoc"):
            if key in loc:
                follow(loc[key])

    api = set()

    def visit(node, top):
        follow(node.get("loc", {}))
        where = current["file"]
        for end in ("begin", "end"):
            follow(node.get("range", {}).get(end, {}))
        if (top and node.get("kind") in ("FunctionDecl", "VarDecl") and where
                and os.path.realpath(where).startswith(root + os.sep)
                and node.get("storageClass") != "static" and not node.get("inline")
                and not node.get("isImplicit")):
            api.add(node["name"])
        for child in node.get("inner", []):
            visit(child, False)

    for node in ast.get("inner", []):
        visit(node, True)
    return api, len(headers)


def dynamic_symbols(nm, library, which):
    out = subprocess.run([nm, "-D", which, library], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.split()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nm", required=True)
    ap.add_argument("--clang", required=True)
    ap.add_argument("--library", required=True)
    ap.add_argument("--include", action="append", required=True)
    ap.add_argument("--cflag", action="append", default=[])
    args = ap.parse_args()

    api, nheaders = header_api(args.clang, args.include, args.cflag)
    exported = {s for s in dynamic_symbols(args.nm, args.library, "--defined-only")
                if not s.startswith("_")}
    undefined = dynamic_symbols(args.nm, args.library, "--undefined-only")

    missing = sorted(api - exported - undefined)
    extra = sorted(exported - api)
    for name in missing:
        print("declared in a header but not exported: %s" % name)
    for name in extra:
        print("exported but not in any installed header: %s" % name)
    print("%s: %d headers declare %d names; %d exported, %d left to the program; %s" % (
        os.path.basename(args.library), nheaders, len(api), len(api & exported),
        len(api & undefined - exported),
        "ok" if not missing and not extra else
        "FAILED (cmake/capheap.map lists the exports)"))
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main())
