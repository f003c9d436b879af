"""nasnet_det.config: safe YAML, _BASE_ inheritance, typed overrides, one-line errors."""

import math
import re

import pytest

from nasnet_det.config import CfgNode, ConfigError, load_config

DEFAULTS = CfgNode({"seed": 0, "optim": {"lr": 0.1, "name": "sgd"}, "ops": ["a", "b"]})


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_base_chain_and_typed_overrides(tmp_path):
    write(tmp_path, "base.yaml", "seed: 3\noptim:\n  name: adamw\n")
    cfg_file = write(tmp_path, "delta.yaml", "_BASE_: base.yaml\noptim:\n  lr: 1\n")
    from_file = load_config(DEFAULTS, cfg_file)
    assert from_file.optim.lr == 1.0 and isinstance(from_file.optim.lr, float)  # int in a file
    cfg = load_config(DEFAULTS, cfg_file, ["optim.lr", "2", "ops", "['c']"])
    assert cfg.seed == 3 and cfg.optim.name == "adamw"
    assert cfg.optim.lr == 2.0 and isinstance(cfg.optim.lr, float)  # int given for a float key
    assert cfg.ops == ["c"]
    assert DEFAULTS.optim.lr == 0.1  # defaults untouched


def test_python_tag_is_refused_not_run(tmp_path):
    marker = tmp_path / "PWNED"
    evil = write(
        tmp_path, "evil.yaml", f"seed: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(ConfigError, match="YAML tag that builds Python objects"):
        load_config(DEFAULTS, evil)
    base_evil = write(tmp_path, "child.yaml", "_BASE_: evil.yaml\n")
    with pytest.raises(ConfigError, match="Python objects"):
        load_config(DEFAULTS, base_evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("seed: [", "not valid YAML"),
        ("- 1\n", "holds a list"),
        ("sed: 1\n", "unknown config key sed"),
        ("seed: abc\n", "config key seed expects a int"),
        ("_BASE_: missing.yaml\n", "missing.yaml"),
    ],
)
def test_bad_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEFAULTS, write(tmp_path, "bad.yaml", text))


def test_bad_paths_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(DEFAULTS, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(DEFAULTS, str(tmp_path))
    (tmp_path / "latin1.yaml").write_bytes(b"seed: \xff\n")
    with pytest.raises(ConfigError, match="latin1.yaml.*not UTF-8"):
        load_config(DEFAULTS, str(tmp_path / "latin1.yaml"))
    with pytest.raises(ConfigError, match="optim.lr expects a float"):
        load_config(DEFAULTS, None, ["optim.lr", "abc"])
    with pytest.raises(ConfigError, match="unknown config key optim.momentum"):
        load_config(DEFAULTS, None, ["optim.momentum", "0.9"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_config(DEFAULTS, None, ["seed"])


def test_table_checks_one_message_style_for_every_family():
    """The rules' words and the one message; bools are no numbers, inf is no number."""
    from nasnet_det.config import Rule, check_table, choice, integer, literal, number, numbers

    cfg = CfgNode({"a": {"n": 0, "x": 1.0, "betas": (0.9, 1.0), "mode": "mx"}})
    cases = [
        (("a.n", integer(1)), "config key a.n must be an integer >= 1, got 0"),
        (("a.n", integer(1, none_ok=True)), "must be an integer >= 1 or None, got 0"),
        (("a.x", number(0, 1, open_high=True)), "a.x must be a number in [0, 1), got 1.0"),
        (("a.x", number(1, open_low=True)), "must be a number > 1, got 1.0"),
        (("a.betas", numbers(2, number(0, 1, open_high=True))), "2 numbers, each in [0, 1)"),
        (("a.mode", choice("max", "min")), "config key a.mode must be one of max, min, got 'mx'"),
        (("a.n", Rule(lambda v: v.startswith("x"), "a word")), "a.n must be a word, got 0"),
    ]  # fmt: skip
    for row, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_table(cfg, [row])
    check_table(cfg, [("a.n", integer(0, 4)), ("a.x", number(0, 1)), ("a.mode", choice("mx"))])
    assert not number().holds(True) and not number().holds(math.inf) and number().holds(3)
    assert not integer().holds(2.0) and not integer().holds(False)
    assert literal("[1, 2]") == [1, 2] and literal("adamw") == "adamw" and literal("1e-3") == 1e-3
