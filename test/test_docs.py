"""README.md and docs/: the rendered model card is fresh, the README stays small, links resolve."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT_BYTES = 12 * 1024

# Linked from README.md, written on other branches (issue 21: engineer B). The integrator empties this
# list once they are merged; test_pending_links_are_still_missing fails as soon as one exists.
RESULT_FILES = (
    "engines/astra_small.json",
    "engines/astra_small.train.json",
    "docs/results/astra_small_heldout.json",
    "docs/results/astra_small_planner.json",
    "docs/results/benchmarks.json",
)


def load_renderer():
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "scripts/render_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_renderer()


def copy_sources(dst: Path) -> Path:
    screening = [p.relative_to(ROOT) for p in (ROOT / "docs/results/screening").glob("*.json")]
    for name in ("README.md", "docs/screening.md", *RESULT_FILES, *screening):
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dst / name)
    return dst


def test_readme_results_block_is_rendered_from_the_data():
    _head, block, _tail = render.split_readme((ROOT / "README.md").read_text())
    assert block == render.render_block(ROOT), "README.md is stale: run python scripts/render_results.py"


def test_check_flags_a_stale_block_and_rendering_fixes_it(tmp_path, capsys):
    root = copy_sources(tmp_path)
    heldout = root / "docs/results/astra_small_heldout.json"
    data = json.loads(heldout.read_text())
    data["model"]["psnr"][data["horizons"].index(8)] = 30.0
    heldout.write_text(json.dumps(data))
    assert render.main(["--check", "--root", str(root)]) == 1
    assert "stale" in capsys.readouterr().err
    assert render.main(["--root", str(root)]) == 0
    lines = (root / "README.md").read_text().splitlines()
    (row,) = [line for line in lines if line.startswith("| PSNR dB, model |")]
    assert row.split("|")[2 + render.SHOWN_HORIZONS.index(8)].strip() == "30.00"
    assert render.main(["--check", "--root", str(root)]) == 0


def test_results_of_another_model_are_refused(tmp_path, capsys):
    root = copy_sources(tmp_path)
    planner = root / "docs/results/astra_small_planner.json"
    data = json.loads(planner.read_text())
    data["model_id"] = "0123456789ab/-/fp32"
    planner.write_text(json.dumps(data))
    render.render_block(root)  # another export of the shipped checkpoint: the same weights
    data["checkpoint_sha256"] = "f" * 64
    planner.write_text(json.dumps(data))
    with pytest.raises(render.ResultsError, match="astra_small_planner.json: model_id '0123456789ab"):
        render.render_block(root)
    assert render.main(["--check", "--root", str(root)]) == 2
    assert "is not the shipped astra_small.onnx" in capsys.readouterr().err


@pytest.mark.parametrize("drop", ["shuffled_commands", "horizons"])
def test_malformed_results_name_the_file_and_entry(tmp_path, drop):
    root = copy_sources(tmp_path)
    heldout = root / "docs/results/astra_small_heldout.json"
    data = json.loads(heldout.read_text())
    del data[drop]
    heldout.write_text(json.dumps(data))
    message = f"astra_small_heldout.json: missing or malformed entry (KeyError: '{drop}')"
    with pytest.raises(render.ResultsError, match=re.escape(message)):
        render.render_block(root)


def test_a_missing_horizon_is_named(tmp_path):
    root = copy_sources(tmp_path)
    heldout = root / "docs/results/astra_small_heldout.json"
    data = json.loads(heldout.read_text())
    data["horizons"] = data["horizons"][:8]
    heldout.write_text(json.dumps(data))
    message = "astra_small_heldout.json: horizons [16] missing"
    with pytest.raises(render.ResultsError, match=re.escape(message)):
        render.render_block(root)


def test_readme_without_markers_is_an_error(tmp_path):
    root = copy_sources(tmp_path)
    (root / "README.md").write_text("# astra_ros\n")
    assert render.main(["--root", str(root)]) == 2


def test_readme_is_small_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text()
    size = len(text.encode())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; the limit is {README_LIMIT_BYTES}"
    assert re.search(r"^make demo\b", text, re.M) and re.search(r"^make test\b", text, re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(path: Path) -> str:
    """Markdown text without fenced code blocks and inline code."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(path)):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        rel = dest.relative_to(root).as_posix() if dest.is_relative_to(root) else str(dest)
        if not dest.exists():
            broken.append(f"{target} (no {rel})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {rel})")
    return broken


def test_relative_links_in_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = {p.relative_to(ROOT).as_posix(): broken_links(p) for p in pages}
    assert not {page: links for page, links in broken.items() if links}


def test_the_link_check_sees_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/benchmarks.md").write_text("# Benchmarks\n\n## Node latency (2026-11-26, session 6)\n")
    page = tmp_path / "docs/probe.md"
    page.write_text(
        "[a](benchmarks.md#node-latency-2026-11-26-session-6) [b](missing.md) `[c](missing.md)`\n"
        "[d](benchmarks.md#no-such-heading) [f](https://example.org/x.md)\n"
    )
    assert broken_links(page, tmp_path) == [
        "missing.md (no docs/missing.md)",
        "benchmarks.md#no-such-heading (no heading #no-such-heading in docs/benchmarks.md)",
    ]
