"""The README works as written: its Python runs, its names exist, its commands and config parse.

How a README snippet must be written (this test finds new ones by itself):
- Every ```python block runs, in README order, in one namespace, in a fresh temporary working
  directory, as a reader pasting them one after another would. A block may use what an earlier block
  defined (the first defines `data`, `train`, `valid`, `test` and a trained `model`), must not rebind
  those names (call another model `ppnet`, not `model`), and must define or import anything else.
  Keep blocks fast: small data, few epochs.
- A block that cannot run here (it needs a download or a service the test cannot provide) is preceded
  by the line `<!-- readme-test: skip: <why> -->`; an inherently slow one by `<!-- readme-test: large -->`
  (it runs only in the `large` variant of this test, with everything before it).
- Every `km.<name>` and `keras_mdr.<name>` in the README (code and prose), the tutorials and the
  library's docstrings resolves after `import keras_mdr as km`, skipped blocks included.
- Every `keras-mdr ...` line of a ```bash block parses with the real argument parser; a ```yaml block
  with a `data` key is a complete config that `keras_mdr.config.load_config` accepts.
"""

import dataclasses
import glob
import importlib
import os
import re
import shlex

import pytest
import yaml

import keras_mdr as km
from keras_mdr import cli, config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(skip|large)\s*(?::\s*(.*?))?\s*-->$")
FENCE = re.compile(r"^\s*```(\w*)\s*$")
NAME = re.compile(r"(?<![\w/.])(km|keras_mdr)((?:\.[A-Za-z_]\w*)+)")


@dataclasses.dataclass
class Block:
    language: str
    line: int  # 1-based README line of the block's first code line
    code: str
    marker: str = None  # "skip" or "large"
    reason: str = None


def readme_blocks(path=README):
    """The fenced code blocks of a Markdown file, with the `readme-test` marker just above each."""
    with open(path) as f:
        lines = f.read().splitlines()
    blocks, marker, index = [], None, 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence and fence.group(1):
            start = index + 1
            end = start
            while not FENCE.match(lines[end]):
                end += 1
            indent = len(lines[index]) - len(lines[index].lstrip())
            code = "\n".join(line[indent:] for line in lines[start:end])
            blocks.append(Block(fence.group(1), start + 1, code, *(marker or (None, None))))
            marker, index = None, end + 1
            continue
        found = MARKER.match(lines[index].strip())
        if found:
            if found.group(1) == "skip" and not found.group(2):
                raise ValueError(f"README.md:{index + 1}: a skipped block must say why (readme-test: skip: why)")
            marker = (found.group(1), found.group(2))
        elif lines[index].strip() and not lines[index].strip().startswith("<!--"):
            marker = None
        index += 1
    return blocks


def _run_python_blocks(tmp_path, monkeypatch, include_large):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    ran = 0
    for block in readme_blocks():
        if block.language != "python" or block.marker == "skip":
            continue
        if block.marker == "large" and not include_large:
            continue
        # Padding keeps README line numbers in tracebacks.
        exec(compile("\n" * (block.line - 1) + block.code, README, "exec"), namespace)
        ran += 1
    return ran


def test_readme_python_runs_top_to_bottom(tmp_path, monkeypatch):
    assert _run_python_blocks(tmp_path, monkeypatch, include_large=False) >= 5


@pytest.mark.large
def test_readme_python_runs_top_to_bottom_with_the_slow_blocks(tmp_path, monkeypatch):
    if not any(b.marker == "large" for b in readme_blocks()):
        pytest.skip("no README block is marked `readme-test: large`")
    _run_python_blocks(tmp_path, monkeypatch, include_large=True)


def _resolve(root, dotted):
    """Follows `km.a.b.c` attribute by attribute, as a reader's code would."""
    value = km
    for part in dotted.strip(".").split("."):
        if not hasattr(value, part) and root == "keras_mdr":
            # `keras_mdr.x.y` in prose may name a module to import (`from keras_mdr.x import y`).
            importlib.import_module(f"{value.__name__}.{part}")
        value = getattr(value, part)
    return value


def _documents():
    yield README
    yield from sorted(glob.glob(os.path.join(REPO, "tutorials", "*.ipynb")))
    for folder, _, files in os.walk(os.path.join(REPO, "keras_mdr")):
        yield from (os.path.join(folder, name) for name in sorted(files) if name.endswith(".py"))


def test_every_km_name_in_the_readme_tutorials_and_docstrings_exists():
    missing = []
    for path in _documents():
        with open(path) as f:
            text = f.read()
        for number, line in enumerate(text.splitlines(), 1):
            for root, dotted in NAME.findall(line):
                try:
                    _resolve(root, dotted)
                except (AttributeError, ImportError) as error:
                    missing.append(f"{os.path.relpath(path, REPO)}:{number}: {root}{dotted} ({error})")
    assert not missing, "\n".join(missing)


def _command_lines():
    for block in readme_blocks():
        if block.language != "bash":
            continue
        for line in block.code.splitlines():
            words = shlex.split(line.split("#")[0].replace("[", " ").replace("]", " "))
            for position, word in enumerate(words):
                if word == "keras-mdr" or word.endswith("/keras-mdr"):
                    yield line, words[position + 1 :]
                    break


def test_every_readme_command_line_parses():
    commands = list(_command_lines())
    assert len(commands) >= 6
    parser = cli.build_parser()
    for line, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as error:
            pytest.fail(f"README command does not parse ({error}): {line}")


def test_every_readme_config_loads(tmp_path):
    configs = [b for b in readme_blocks() if b.language == "yaml" and "data" in (yaml.safe_load(b.code) or {})]
    assert configs
    for block in configs:
        path = tmp_path / f"readme_{block.line}.yaml"
        path.write_text(block.code)
        config.load_config(str(path))


def test_a_marker_applies_to_the_next_block_only(tmp_path):
    text = (
        "<!-- readme-test: skip: needs the MovieLens download -->\n```python\nx = 1\n```\n\n"
        "<!-- readme-test: large -->\n\n```python\ny = 2\n```\n```python\nz = 3\n```\n"
    )
    path = tmp_path / "README.md"
    path.write_text(text)
    blocks = readme_blocks(path)
    assert [(b.code, b.marker, b.reason, b.line) for b in blocks] == [
        ("x = 1", "skip", "needs the MovieLens download", 3),
        ("y = 2", "large", None, 9),
        ("z = 3", None, None, 12),
    ]
