"""Every example in the sources' docs is compiled and run: as a KUnit case that repeats it.

Out-of-tree crates never run doctests, so each example written in doctest form (hidden `# `
lines for its imports, `# Ok::<(), Error>(())` at the end) has a KUnit case whose body
holds the same visible code. This test holds them together in one direction: an example
edited without its case fails here, on the host, before any kernel boots (a case edited
without its example fails too, as the example is then in no case).
rustfmt formats the cases and not the docs, so code is compared without whitespace and
without the trailing commas rustfmt adds where it wraps a line."""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = sorted(glob.glob(os.path.join(REPO, "*.rs"))
                 + glob.glob(os.path.join(REPO, "kernel", "**", "*.rs"), recursive=True))
DOC = re.compile(r"^\s*//[!/] ?(.*)$")
FENCE = re.compile(r"^```(\w*)$")


def relative(path):
    return os.path.relpath(path, REPO)


def doc_examples(path):
    """The fenced code blocks of `path`'s doc comments: (line, info string, visible lines)."""
    examples, block, start, info = [], None, 0, ""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            doc = DOC.match(line)
            if not doc:
                block = None
                continue
            text = doc.group(1)
            fence = FENCE.match(text.strip())
            if fence and block is None:
                block, start, info = [], number, fence.group(1)
            elif fence:
                examples.append((start, info, block))
                block = None
            elif block is not None and not (text == "#" or text.startswith("# ")):
                block.append(text)
    return examples


def normal(text):
    """`text` without whitespace, and without the commas rustfmt adds before a closing bracket."""
    return re.sub(r",(?=[)\]}])", "", re.sub(r"\s+", "", text))


def kunit_code():
    """The code of every `#[kunit_tests]` module in the tree (each runs to its file's end)."""
    code = []
    for path in SOURCES:
        with open(path) as f:
            text = f.read()
        start = text.find("kunit_tests(")
        if start < 0:
            continue
        code.append(text[start:])
    return normal("\n".join(code))


EXAMPLES = [(relative(path), line, info, block)
            for path in SOURCES for line, info, block in doc_examples(path)]


def test_the_sources_have_examples():
    # A parser that finds nothing would pass every case below.
    assert len(EXAMPLES) >= 14, EXAMPLES


@pytest.mark.parametrize("path,line,info,block", EXAMPLES,
                         ids=[f"{path}:{line}" for path, line, _, _ in EXAMPLES])
def test_each_example_is_a_kunit_case(path, line, info, block):
    assert info in ("", "rust"), (
        f"{path}:{line}: a ```{info} example is never compiled; write it as a doctest and "
        "repeat it in a KUnit case")
    code = normal("\n".join(block))
    assert code, f"{path}:{line}: an example with no visible code"
    assert code in kunit_code(), (
        f"{path}:{line}: no KUnit case holds this example's code:\n" + "\n".join(block))
