"""Make this folder's test data (``import coco_synthetic``) and the reliability harness
(``from harness import run_tool``) importable under pytest's ``--import-mode=importlib``, which
does not put test folders on ``sys.path``."""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS / "evaluation", _TESTS / "reliability"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
