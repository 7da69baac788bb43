#!/usr/bin/env python3
"""Compiles every ```cpp block of README.md and docs/*.md, so the examples users copy compile.

All blocks of all pages become one translation unit per compiler (<mp/mp.hpp> costs seconds
to parse; once per compiler keeps the check cheap), compiled with -std=c++20 -fsyntax-only
-Werror (the compiler's default warnings, e.g. a vexing parse, fail the block). Each block
sits in its own namespace, so blocks never see each other's names, and `#line` directives
make every diagnostic name the Markdown file and line of the block's text.

What every block sees: <mp/mp.hpp>, <mp/mpi.hpp>, the standard headers listed in PRELUDE
and `using namespace std::chrono_literals;`. A block's own #include lines are moved to the
top of the unit.

A block may declare the context it needs in an HTML comment (invisible on the rendered page)
right above its fence; without one, the block is declarations (a program, or a part of one):

    <!-- cpp-context: file -->                the block is declarations (the default)
    <!-- cpp-context: function -->            the block is statements: wrapped in a function
    <!-- cpp-context: function from 3 -->     lines 1-2 are declarations, 3 on statements
    <!-- cpp-context: global -->              no namespace around the block (an explicit
                                              specialization of an mp template needs that;
                                              combine: `global, function from 9`)
    <!-- cpp-context: function                any lines after the first, up to `-->`, are C++
    int fun(int); std::vector<int> items;     placed before the block: what the reader's
    -->                                       program would already have (names it uses)

Usage: doc_blocks.py --root SRC --cxx CXX [-I DIR ...] [--iquote DIR ...] [--keep FILE] [PAGE.md ...]
(pages default to README.md and docs/*.md under --root). Exit status 0 if every block
compiles; otherwise the compiler's diagnostics and a list of the failing blocks.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

PRELUDE = """\
#include <mp/mp.hpp>
#include <mp/mpi.hpp>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>
using namespace std::chrono_literals;
"""

CONTEXT = re.compile(r"^<!--\s*cpp-context:(?P<words>[^>]*?)\s*(?P<end>-->)?\s*$")


class Block:
    def __init__(self, page, fence_line, lines):
        self.page = page                # path relative to the root, as diagnostics name it
        self.fence_line = fence_line    # 1-based line of the ```cpp fence
        self.lines = lines              # the block's text, fences excluded
        self.context = "file"           # the words of its cpp-context comment
        self.in_namespace = True
        self.statements_from = None     # 0-based index of its first statement line, if any
        self.prelude, self.prelude_line = [], 0

    def first_line(self):
        return self.fence_line + 1

    def last_line(self):
        return self.fence_line + len(self.lines)

    def where(self):
        return f"{self.page}:{self.fence_line}"

    def set_context(self, words):
        """False if the words are not a context this script knows."""
        if not words.strip():
            return False
        for word in words.split(","):
            word = " ".join(word.split())
            m = re.fullmatch(r"file|global|function(?: from ([1-9]\d*))?", word)
            if not m:
                return False
            if word == "file":
                continue
            if word == "global":
                self.in_namespace = False
            else:
                self.statements_from = int(m.group(1) or 1) - 1
        self.context = " ".join(words.split())
        return True


def parse_page(root, page):
    """The ```cpp blocks of one page, each with the context comment just above its fence."""
    with open(os.path.join(root, page), encoding="utf-8") as f:
        text = f.read().split("\n")
    blocks, errors = [], []
    i = 0
    while i < len(text):
        if text[i].strip() != "```cpp":
            i += 1
            continue
        fence = i
        end = fence + 1
        while end < len(text) and text[end].strip() != "```":
            end += 1
        if end == len(text):
            errors.append(f"{page}:{fence + 1}: ```cpp block is never closed")
        block = Block(page, fence + 1, text[fence + 1:end])
        # a context comment ends on the line right above the fence
        if fence > 0 and text[fence - 1].strip().endswith("-->"):
            start = fence - 1
            while start > 0 and not text[start].lstrip().startswith("<!--"):
                start -= 1
            m = CONTEXT.match(text[start].strip())
            if m:
                if not block.set_context(m.group("words")):
                    errors.append(f"{page}:{start + 1}: cpp-context '{m.group('words').strip()}' is not "
                                  "'file', 'function', 'function from N' or 'global' (see tests/doc_blocks.py)")
                if not m.group("end"):                  # multi-line: C++ up to the `-->` line
                    block.prelude, block.prelude_line = text[start + 1:fence - 1], start + 2
        blocks.append(block)
        i = end + 1
    return blocks, errors


def translation_unit(blocks):
    """One C++ file for all blocks; each block's lines keep their Markdown file and line."""
    out = [PRELUDE]
    for b in blocks:                                    # a block's #includes go to the top
        for n, line in enumerate(b.lines):
            if line.lstrip().startswith("#include"):
                out.append(f'#line {b.first_line() + n} "{b.page}"\n{line}\n')
    for b in blocks:
        body = ["" if line.lstrip().startswith("#include") else line for line in b.lines]
        name = f"doc_block_{re.sub(r'[^A-Za-z0-9]', '_', b.page)}_{b.fence_line}"
        split = len(body) if b.statements_from is None else b.statements_from
        out.append(f"// {b.where()} (cpp-context: {b.context})\n")
        if b.in_namespace:
            out.append(f"namespace {name} {{\n")
        if b.prelude:
            out.append(f'#line {b.prelude_line} "{b.page}"\n' + "\n".join(b.prelude) + "\n")
        out.append(f'#line {b.first_line()} "{b.page}"\n' + "\n".join(body[:split]) + "\n")
        if b.statements_from is not None:
            out.append(f"[[maybe_unused]] void {name}_statements() {{\n"
                       f'#line {b.first_line() + split} "{b.page}"\n' + "\n".join(body[split:]) + "\n}\n")
        if b.in_namespace:
            out.append(f"}}  // namespace {name}\n")
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="the source tree (README.md, docs/)")
    ap.add_argument("--cxx", required=True, help="the compiler, e.g. g++ or clang++-14")
    ap.add_argument("-I", dest="includes", action="append", default=[], help="an include directory")
    ap.add_argument("--iquote", action="append", default=[],
                    help='a directory for #include "..." only (bench/ has a file named `compare`)')
    ap.add_argument("--keep", help="also write the generated translation unit here")
    ap.add_argument("pages", nargs="*", help="pages relative to --root (default: all)")
    args = ap.parse_args()

    pages = args.pages or ["README.md"] + sorted(
        os.path.relpath(p, args.root) for p in glob.glob(os.path.join(args.root, "docs", "*.md")))
    blocks, errors = [], []
    for page in pages:
        b, e = parse_page(args.root, page)
        blocks += b
        errors += e
    if errors:
        print("\n".join(errors))
        return 1
    if not blocks:
        print("no ```cpp blocks found: is --root the source tree?")
        return 1

    source = translation_unit(blocks)
    if args.keep:
        with open(args.keep, "w", encoding="utf-8") as f:
            f.write(source)
    with tempfile.NamedTemporaryFile("w", suffix=".cpp", encoding="utf-8") as tu:
        tu.write(source)
        tu.flush()
        # run from the root, so `#line "docs/x.md"` diagnostics are paths an editor opens
        # -Wno-return-type: a block's main() sits in a namespace, where it must return
        cmd = [args.cxx, "-std=c++20", "-fsyntax-only", "-Werror", "-Wno-return-type",
               "-fno-diagnostics-color",
               "-ferror-limit=0" if "clang" in os.path.basename(args.cxx) else "-fmax-errors=0"]
        cmd += [f"-I{os.path.abspath(d)}" for d in args.includes]
        cmd += [f"-iquote{os.path.abspath(d)}" for d in args.iquote] + [tu.name]
        r = subprocess.run(cmd, cwd=args.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    sys.stdout.write(r.stdout)
    pages_with_blocks = len({b.page for b in blocks})
    if r.returncode == 0:
        print(f"{len(blocks)} ```cpp blocks of {pages_with_blocks} pages compile with {args.cxx}")
        return 0

    failed = set()
    for m in re.finditer(r"^(\S+\.md):(\d+):(?:\d+:)? (?:fatal )?error", r.stdout, re.M):
        for b in blocks:
            lo = b.prelude_line or b.first_line()
            if b.page == m.group(1) and lo <= int(m.group(2)) <= b.last_line():
                failed.add(b)
    print(f"\n{args.cxx}: {len(failed) or 'some'} of {len(blocks)} ```cpp blocks do not compile:")
    for b in sorted(failed, key=lambda b: (b.page, b.fence_line)):
        print(f"  {b.where()}: the block at lines {b.first_line()}-{b.last_line()} "
              f"(cpp-context: {b.context})")
    if not failed:
        print("  (no error names a block: see the output above; --keep FILE writes the unit)")
    print("Fix the block, or give it the context it needs: see the top of tests/doc_blocks.py.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
