"""The wheel holds one import root with all five packages and every kernel source, and none of the benchmark
suite, which is a distribution of its own (bench/); the editable installs work."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAPPED = {"xlstm_seq": "xlstm_seq", "kernels": "xlstm_seq/kernels", "forecasting": "xlstm_seq/forecasting",
          "rl": "xlstm_seq/rl", "lm": "xlstm_seq/lm"}  # fmt: skip
KERNEL_SOURCE_SUFFIXES = (".cu", ".cuh", ".cpp", ".h")


def _copy_tree(dest: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    assert tracked.returncode == 0, tracked.stderr
    for rel in tracked.stdout.split():
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)


def _build_wheel(src: Path, out: Path, pattern: str) -> set[str]:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob(pattern)
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> tuple[set[str], list[str]]:
    """Builds a wheel from a copy of the repo plus probe kernel sources; returns its file names and the probes."""
    src = tmp_path_factory.mktemp("src")
    _copy_tree(src)
    # Probe sources prove the package-data rules ship CUDA/C++ files from any kernel folder.
    probes = [f"kernels/slstm/cuda/probe{suffix}" for suffix in KERNEL_SOURCE_SUFFIXES]
    for probe in probes:
        (src / probe).parent.mkdir(parents=True, exist_ok=True)
        (src / probe).write_text("// probe\n")
    names = _build_wheel(src, tmp_path_factory.mktemp("wheel"), "xlstm_seq-*.whl")
    kernel_sources = [p.relative_to(REPO).as_posix() for p in (REPO / "kernels").rglob("*")
                      if p.suffix in KERNEL_SOURCE_SUFFIXES]  # fmt: skip
    return names, probes + kernel_sources


def test_wheel_has_one_import_root_with_every_package(wheel_files):
    names, _ = wheel_files
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"xlstm_seq"}, f"generic top-level modules leaked into site-packages: {top_level}"
    for folder, target in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO / folder).as_posix()
            assert f"{target}/{rel}" in names, f"package {folder}/{rel} is missing from the wheel"
        for module in (REPO / folder).rglob("*.py"):
            rel = module.relative_to(REPO / folder).as_posix()
            assert f"{target}/{rel}" in names, f"module {folder}/{rel} is missing from the wheel"


def test_wheel_ships_every_kernel_source(wheel_files):
    names, sources = wheel_files
    for source in sources:
        shipped = "xlstm_seq/" + source
        assert shipped in names, f"kernel source {source} is not in the wheel"


def test_editable_install_imports_every_package(tmp_path):
    code = (
        "import importlib, pathlib\n"
        "for name in ['xlstm_seq', 'xlstm_seq.kernels', 'xlstm_seq.kernels.mlstm', 'xlstm_seq.kernels.slstm',"
        " 'xlstm_seq.forecasting', 'xlstm_seq.rl', 'xlstm_seq.lm', 'xlstm_seq.tracking', 'xlstm_seq.cli']:\n"
        "    print(name, pathlib.Path(importlib.import_module(name).__file__).resolve())\n"
        "import importlib.util\n"
        "print('generic', [m for m in ('kernels', 'rl', 'lm', 'forecasting') if importlib.util.find_spec(m)])\n"
    )
    # Run outside the repo so the import comes from the installed package, not the working directory.
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines.pop("generic") == "[]"
    expected_dirs = {"xlstm_seq.kernels": "kernels", "xlstm_seq.forecasting": "forecasting", "xlstm_seq.rl": "rl",
                     "xlstm_seq.lm": "lm"}  # fmt: skip
    for module, folder in expected_dirs.items():
        assert Path(lines[module]).parent == REPO / folder, f"{module} resolved to {lines[module]}"


def test_library_wheel_holds_no_benchmark_code(wheel_files):
    names, _ = wheel_files
    modules = [name for name in names if name.endswith(".py")]
    bench_like = [name for name in modules if "bench" in name or name.endswith(("_report.py", "_peers.py"))]
    assert not bench_like, f"benchmark code in the library's wheel: {bench_like}"
    assert not any("/synthetic/" in name for name in modules), "the synthetic-task benchmark belongs to bench/"


def test_bench_wheel_has_its_own_import_root(tmp_path):
    src = tmp_path / "src"
    _copy_tree(src)
    names = _build_wheel(src / "bench", tmp_path / "wheel", "xlstm_seq_bench-*.whl")
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"xlstm_seq_bench"}, top_level
    for module in (REPO / "bench").rglob("*.py"):
        rel = module.relative_to(REPO / "bench").as_posix()
        assert f"xlstm_seq_bench/{rel}" in names, f"bench/{rel} is missing from the benchmark suite's wheel"
