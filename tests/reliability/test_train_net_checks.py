"""tools/train_net.py checks the training options and the weights it starts from before
OUTPUT_DIR, config.yaml or log.txt exist: SOLVER.OPTIMIZER, SOLVER.BETAS, MODEL_EMA.DECAY,
SOLVER.BEST_CHECKPOINTER.MODE, and a MODEL.WEIGHTS that names nothing loadable (an unknown or
unfetchable weight name, an http:// or detectron2:// URL) is one line and exit 2."""

from __future__ import annotations

import contextlib
import http.server
import socket
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "DATASETS.TEST", "()"]

CASES = [
    ("optimizer", ["SOLVER.OPTIMIZER", "ADAM"],
     "config key SOLVER.OPTIMIZER must be one of SGD, ADAMW, got 'ADAM'"),
    ("betas-range", ["SOLVER.BETAS", "(0.9, 1.0)"],
     "config key SOLVER.BETAS must be 2 numbers, each in [0, 1), got (0.9, 1.0)"),
    ("betas-words", ["SOLVER.BETAS", "('a', 0.9)"], "SOLVER.BETAS must be 2 numbers"),
    ("betas-two-words", ["SOLVER.BETAS", "('a','b')"],
     "config key SOLVER.BETAS must be 2 numbers, each in [0, 1), got ('a', 'b')"),
    ("betas-quoted-numbers", ["SOLVER.BETAS", '["0.9","x"]'],
     "config key SOLVER.BETAS must be 2 numbers, each in [0, 1), got ('0.9', 'x')"),
    ("betas-one-word", ["SOLVER.BETAS", "abc"],
     "config key SOLVER.BETAS expects a tuple (default (0.9, 0.999)), got abc (str)"),
    ("betas-count", ["SOLVER.BETAS", "(0.9,)"], "SOLVER.BETAS must be 2 numbers"),
    ("ema-decay", ["MODEL_EMA.DECAY", "1.0"],
     "config key MODEL_EMA.DECAY must be a number in (0, 1), got 1.0"),
    ("best-mode", ["SOLVER.BEST_CHECKPOINTER.MODE", "'maximum'"],
     "config key SOLVER.BEST_CHECKPOINTER.MODE must be one of max, min, got 'maximum'"),
    ("scheduler", ["SOLVER.LR_SCHEDULER_NAME", "Cosine"],
     "SOLVER.LR_SCHEDULER_NAME must be one of WarmupMultiStepLR"),
    ("weights-http", ["MODEL.WEIGHTS", "http://example.invalid/model.pth"],
     "MODEL.WEIGHTS 'http://example.invalid/model.pth' is a URL"),
    ("weights-detectron2", ["MODEL.WEIGHTS", "detectron2://ImageNetPretrained/MSRA/R-50.pkl"],
     "is a URL; it must be a local weights file or a weight name"),
    ("weights-unknown-name", ["MODEL.WEIGHTS", "nasnet://timm/nasnetamobile"],
     "unknown weight name 'nasnet://timm/nasnetamobile'"),
]  # fmt: skip


def _run(tmp_path, opts):
    out = tmp_path / "out"
    args = ["--config-file", INSTANT, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", out, *TINY, *opts]
    return run_tool("train_net.py", *map(str, args), cwd=tmp_path), out


@pytest.mark.parametrize("opts,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_training_option_or_weights_stop_before_any_output(tmp_path, opts, message):
    result, out = _run(tmp_path, opts)
    assert_clean_failure(result, message)
    assert not out.exists()  # no OUTPUT_DIR, hence no config.yaml, no log.txt


@contextlib.contextmanager
def _failing_server(kind: str):
    """A local URL that fails as a download can: ``http404`` (a server that answers 404),
    ``garbage`` (answers 200 with bytes that are not the published file),
    ``refused`` (nothing listens: an unreachable host), ``silent`` (accepts, never answers),
    ``missing`` (a file:// URL to nothing). Never the network."""
    if kind == "missing":
        with tempfile.TemporaryDirectory() as d:
            yield (Path(d) / "gone.pth").as_uri()
        return
    if kind in ("http404", "garbage"):

        class NotFound(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if kind == "http404":
                    self.send_error(404)
                    return
                self.send_response(200)  # a whole answer, but not the published file
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b"\0" * 4096)

            def log_message(self, *args):  # quiet
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/nasnetamobile-7e03cead.pth"
        finally:
            server.shutdown()
            server.server_close()
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if kind == "refused":
        sock.close()  # the port is free again: connecting is refused
    else:
        sock.listen(1)  # the kernel completes the connection; nobody ever reads or answers
    try:
        yield f"http://127.0.0.1:{port}/nasnetamobile-7e03cead.pth"
    finally:
        sock.close()


DOWNLOADS = [
    ("http404", "(HTTP 404 Not Found)"),
    ("refused", "(Connection refused)"),
    ("silent", "(no answer within 1 s (raise NASNET_DET_DOWNLOAD_TIMEOUT_S))"),
    ("missing", "from file://"),
]


@pytest.mark.parametrize("kind,reason", DOWNLOADS, ids=[d[0] for d in DOWNLOADS])
def test_weight_name_that_cannot_be_fetched_stops_before_any_output(
    tmp_path, monkeypatch, kind, reason
):
    """Offline and nothing in the cache: one line naming the weight name, why, and where to
    place the file by hand; no OUTPUT_DIR and no partial download."""
    from nasnet_det.convert import hub
    from nasnet_det.convert import pretrainedmodels as cadene

    cache = tmp_path / "cache"
    monkeypatch.setenv(hub.CACHE_ENV, str(cache))
    monkeypatch.setenv("NASNET_DET_DOWNLOAD_TIMEOUT_S", "1")
    decl = cadene.PRETRAINED["nasnetamobile"]
    with _failing_server(kind) as url:
        monkeypatch.setitem(cadene.PRETRAINED, "nasnetamobile", replace(decl, url=url))
        result, out = _run(tmp_path, ["MODEL.WEIGHTS", "nasnet://pretrainedmodels/nasnetamobile"])
    assert_clean_failure(result, reason)
    line = result.stderr.strip().splitlines()[-1]
    assert "could not download weights nasnet://pretrainedmodels/nasnetamobile" in line
    placed = cache / "hub" / "pretrainedmodels" / decl.file_name
    assert f"download {decl.file_name} elsewhere and place it at {placed}" in line
    assert not out.exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no partial download kept


def test_weights_that_do_not_match_their_checksum_stop_before_any_output(tmp_path, monkeypatch):
    """A download that is not the published file is not kept; a damaged file in the cache is
    named with how to get it again. Either way no OUTPUT_DIR."""
    from nasnet_det.convert import hub
    from nasnet_det.convert import pretrainedmodels as cadene

    cache = tmp_path / "cache"
    monkeypatch.setenv(hub.CACHE_ENV, str(cache))
    decl = cadene.PRETRAINED["nasnetamobile"]
    name = ["MODEL.WEIGHTS", "nasnet://pretrainedmodels/nasnetamobile"]
    with _failing_server("garbage") as url:
        monkeypatch.setitem(cadene.PRETRAINED, "nasnetamobile", replace(decl, url=url))
        result, out = _run(tmp_path, name)
    message = (f"download of weights nasnet://pretrainedmodels/nasnetamobile from {url} does not "
               "match its checksum (sha256 prefix 7e03cead)")  # fmt: skip
    assert_clean_failure(result, message)
    assert not out.exists() and not [p for p in cache.rglob("*") if p.is_file()]
    placed = cache / "hub" / "pretrainedmodels" / decl.file_name
    placed.write_bytes(b"not the weights")  # damaged, or another file placed by hand
    before = snapshot(cache)
    result, out = _run(tmp_path, name)
    assert_clean_failure(result, "the file is damaged or another file: delete it to download",
                         before, cache)  # fmt: skip
    assert f"{placed} has sha256 " in result.stderr
    assert not out.exists()


def test_convert_weights_names_the_weights_it_could_not_fetch(tmp_path, monkeypatch):
    """The other tool that fetches a weight name (``--input nasnet://...``)."""
    from nasnet_det.convert import hub
    from nasnet_det.convert import pretrainedmodels as cadene

    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    decl = cadene.PRETRAINED["nasnetamobile"]
    out = tmp_path / "out"
    out.mkdir()
    with _failing_server("http404") as url:
        monkeypatch.setitem(cadene.PRETRAINED, "nasnetamobile", replace(decl, url=url))
        result = run_tool("convert_weights.py", "--source", "pretrainedmodels", "--input",
                          "nasnet://pretrainedmodels/nasnetamobile", "--output",
                          str(out / "w.pth"), cwd=tmp_path)  # fmt: skip
    assert_clean_failure(result, "(HTTP 404 Not Found); to use them offline", {}, out)


def test_the_good_values_pass_the_same_checks():
    """ADAMW in any case, betas at the edge of the range, EMA and best-checkpoint options."""
    from nasnet_det.detection.engine import check_config, load_config

    cfg = load_config(str(INSTANT), ["MODEL.DEVICE", "cpu", *TINY])
    for key, value in (
        ("SOLVER.OPTIMIZER", "adamw"),
        ("SOLVER.BETAS", (0.0, 0.999)),
        ("MODEL_EMA.DECAY", 0.5),
        ("SOLVER.BEST_CHECKPOINTER.MODE", "min"),
    ):
        node, leaf = cfg, key.split(".")
        for part in leaf[:-1]:
            node = node[part]
        node[leaf[-1]] = value
    check_config(cfg)  # fmt: skip
