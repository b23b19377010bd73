"""HTML report, `trnsim profile` / `trnsim diff` commands, nki.profile files, multi-core traces."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import numpy as np
import profkernels as pk
import pytest

from trnsim.cli import main as trnsim_main
from trnsim.core.launch import Launch
from trnsim.core.liveness import usage_timelines
from trnsim.profile.data import ProfileData
from trnsim.profile.summary import summarize
from trnsim.profile.trace import write_trace
from trnsim.timing.model import schedule

HERE = os.path.dirname(os.path.abspath(__file__))


class _Doc(HTMLParser):
    """Collects images, table cells and unbalanced tags of an HTML page."""

    VOID = {"img", "br", "meta", "hr", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse_html(path: str) -> _Doc:
    d = _Doc()
    with open(path, encoding="utf-8") as f:
        d.feed(f.read())
    d.close()
    return d


SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import ml_dtypes
    sys.path.insert(0, {here!r})
    from neuronxcc import nki  # served by trnsim under `python -m trnsim profile`
    import profkernels as pk

    k = int(sys.argv[1])
    rng = np.random.default_rng()
    a = rng.standard_normal((256, 128 * k)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((256, 512)).astype(ml_dtypes.bfloat16)
    pk.matmul_tiled(a, b)
    pk.small_tiles(rng.standard_normal((64, 16)).astype(np.float32))
    """
)


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "prog.py"
    p.write_text(SCRIPT.format(here=HERE))
    return str(p)


def test_profile_command_writes_traces_summaries_and_one_report(tmp_path, script):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    rc = trnsim_main(["profile", "-q", script, "1", "--out", str(out)])
    assert rc == 0
    names = sorted(os.listdir(out))
    assert names == [
        "00_matmul_tiled.pftrace", "00_matmul_tiled.summary.json", "00_matmul_tiled.summary.txt",
        "01_small_tiles.pftrace", "01_small_tiles.summary.json", "01_small_tiles.summary.txt", "report.html",
    ]
    s = json.loads((out / "00_matmul_tiled.summary.json").read_text())
    assert s["kernel"] == "matmul_tiled" and s["trace"]["file"] == "00_matmul_tiled.pftrace"
    doc = _parse_html(str(out / "report.html"))
    assert not doc.errors and not doc.stack
    # two launches x (timeline, utilisation, roofline), all PNGs embedded in the page
    assert len(doc.images) == 6
    for src in doc.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(doc.text)
    for needle in ("matmul_tiled", "small_tiles", "small_dma_transfers", "low_partition_usage", "Hottest source lines",
                   "profkernels.py:", "res_psum += nisa.nc_matmul(lhsT_tile, rhs_tile)"):
        assert needle in text


def test_profile_command_json_format_and_options(tmp_path, script):
    out = tmp_path / "j"
    rc = trnsim_main(["profile", "--format", "json", "--detail", "aggregate", "--no-report", "-q", "--out",
                      str(out), script, "1"])
    assert rc == 0
    assert sorted(p for p in os.listdir(out) if p.endswith(".json") and "summary" not in p) == [
        "00_matmul_tiled.json", "01_small_tiles.json"]
    assert not (out / "report.html").exists()
    doc = json.loads((out / "00_matmul_tiled.json").read_text())
    assert any(e.get("cat") == "aggregate" for e in doc["traceEvents"])
    assert trnsim_main(["profile", "--bogus", script]) == 2
    assert trnsim_main(["profile"]) == 2


def test_diff_command_and_ci_gate(tmp_path, script, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert trnsim_main(["profile", "-q", "--no-report", script, "1", "--out", str(a)]) == 0
    assert trnsim_main(["profile", "-q", "--no-report", script, "2", "--out", str(b)]) == 0  # twice the work
    capsys.readouterr()
    assert trnsim_main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "00_matmul_tiled" in out and "total_time" in out and "profkernels.py:" in out
    assert trnsim_main(["diff", str(a), str(b), "--fail-above", "5%"]) == 1
    assert trnsim_main(["diff", str(b), str(a), "--fail-above", "5%"]) == 0  # faster: no regression
    assert trnsim_main(["diff", str(a), str(a), "--fail-above", "0"]) == 0
    capsys.readouterr()
    assert trnsim_main(["diff", str(a / "00_matmul_tiled.summary.json"), str(b / "00_matmul_tiled.summary.json"),
                        "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    (res,) = d.values()
    sa = json.loads((a / "00_matmul_tiled.summary.json").read_text())
    sb = json.loads((b / "00_matmul_tiled.summary.json").read_text())
    assert res["total_time_percent"] == pytest.approx(100 * (sb["total_time_ns"] / sa["total_time_ns"] - 1))
    tensor = [e for e in res["engines"] if e["engine"] == "Tensor"][0]
    assert tensor["instructions_b"] == 2 * tensor["instructions_a"]


def test_nki_profile_writes_documented_files(tmp_path):
    import trnsim.frontend.legacy as nki

    rng = np.random.default_rng()
    k = nki.profile(pk.one_matmul.func, working_directory=str(tmp_path), save_neff_name="file.neff",
                    save_trace_name="profile.ntff")
    args = (rng.standard_normal((128, 128)).astype(np.float32), rng.standard_normal((128, 512)).astype(np.float32))
    k(*args)
    names = set(os.listdir(tmp_path))
    assert {"file.neff", "profile.ntff", "profile.summary.json", "profile.summary.txt"} <= names
    prog = json.loads((tmp_path / "file.neff").read_text())
    assert prog["kernel"] == "one_matmul" and len(prog["instructions"]) == prog["instruction_count"] == 5
    pfreader = pytest.importorskip("pfreader")
    tr = pfreader.read(str(tmp_path / "profile.ntff"))
    assert sorted(s.name for s in tr.slices if "idx" in s.args) == ["DMA", "DMA", "DMA", "MATMUL", "TENSOR_COPY"]
    with pytest.raises(FileExistsError):
        k(*args)
    k2 = nki.profile(pk.one_matmul.func, working_directory=str(tmp_path), overwrite=True)
    k2(*args)  # default names: file.neff / profile.ntff


def _two_core_launch(launch_of):
    """One launch whose stream holds two cores' instructions (two independent runs, the second on core 1)."""
    rng = np.random.default_rng()
    args = (rng.standard_normal((128, 128)).astype(np.float32), rng.standard_normal((128, 512)).astype(np.float32))
    r0, _ = launch_of(pk.one_matmul, *args)
    r1, _ = launch_of(pk.one_matmul, *args)
    stream = list(r0.stream)
    for ins in r1.stream:
        ins.core = 1
        stream.append(ins)
    for k, ins in enumerate(stream):
        ins.idx = k
    r0.run.stream = stream
    for st in {a.storage for ins in r1.stream for a in ins.reads + ins.writes}:
        st.core = 1
    rec = Launch("one_matmul_x2", r0.run, (2,))
    rec.usage = usage_timelines(stream, {"sbuf": rec.arch.sbuf_usable_bytes_per_partition,
                                         "psum": rec.arch.psum_bytes_per_partition})
    return rec, schedule(stream, rec.arch)


def test_multi_core_trace_has_one_group_per_core(tmp_path, launch_of):
    pfreader = pytest.importorskip("pfreader")
    rec, est = _two_core_launch(launch_of)
    path = str(tmp_path / "mc.pftrace")
    write_trace(rec, path, est)
    tr = pfreader.read(path)
    groups = sorted(t.name for t in tr.tracks.values() if t.HasField("process"))
    assert groups == ["NeuronCore 0", "NeuronCore 1"]
    per = tr.by_track_name()
    for g in groups:
        assert [s.name for s in per[(g, "Tensor MultiplyMoving")]] == ["MATMUL"]
        assert len(per[(g, "Tensor LoadStationary")]) == 1
        assert tr.counter_by_name(g, "SBUF bytes/partition")
    s = summarize(rec, est, ProfileData(rec, est))
    assert s["cores"] == [0, 1]
    # both cores' flops over both cores' peak
    assert s["mfu_estimated_percent"] == pytest.approx(100 * 2 * 2 * 128 * 128 * 512 / (2 * 2 * 128 * 128 * 2.4 *
                                                                                         est.total_ns))
    assert set(s["active_time_percent_per_core"]) == {"0", "1"}


def test_spmd_launch_on_two_cores(tmp_path):
    pfreader = pytest.importorskip("pfreader")
    import trnsim.frontend.legacy.language as nl
    from trnsim.profile.artifacts import profile_launch

    _, rec = pk.exp_rows[nl.nc(2)].launch(np.random.default_rng().standard_normal((256, 512)).astype(np.float32))
    lp = profile_launch(rec, str(tmp_path), "spmd", section=False)
    assert lp.summary["cores"] == [0, 1]
    tr = pfreader.read(lp.files["trace"])
    per = tr.by_track_name()
    for g in ("NeuronCore 0", "NeuronCore 1"):
        assert len(per[(g, "Scalar")]) == 1  # the exp of this core's rows
        assert sum(len(v) for (grp, name), v in per.items() if grp == g and name.startswith("DMA ")) == 2


@pytest.mark.skipif(
    os.environ.get("TRNSIM_TEST_CHROMIUM") != "1" or not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="optional: set TRNSIM_TEST_CHROMIUM=1 with chromium installed (docs/profiling.md)",
)
def test_report_renders_in_headless_chromium(tmp_path, script):
    out = tmp_path / "r"
    assert trnsim_main(["profile", "-q", script, "1", "--out", str(out)]) == 0
    png = tmp_path / "report.png"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,2400",
                    f"--screenshot={png}", f"file://{out / 'report.html'}"], check=True, capture_output=True,
                   timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a page with pictures, not a blank one


def test_cli_runs_as_module(tmp_path, script):
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "trnsim", "profile", "--no-report", script, "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "total_time" in r.stderr and (out / "00_matmul_tiled.pftrace").exists()
