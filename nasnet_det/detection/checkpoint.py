"""Loading NASNet weights into the detector: classification checkpoints and Detectron2 ones.

:func:`classification_to_detectron2` maps a :func:`build_nasnet` state dict (``stem.*``,
``cells.{i}.*``, ``classifier.*``, ``aux_head.*``) to the detector's names;
:class:`NASNetCheckpointer` lets ``MODEL.WEIGHTS`` be such a classification checkpoint (a
``.pth`` with a ``"model"`` entry) or a Detectron2 one, loads with ``weights_only=True`` and
refuses a checkpoint made for another architecture with one error.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode

from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.nasnet import plan_nasnet

__all__ = [
    "CheckpointMismatchError",
    "NASNetCheckpointer",
    "classification_to_detectron2",
    "is_classification_state_dict",
]

logger = logging.getLogger(__name__)

_CLASSIFICATION_ONLY = ("classifier.", "aux_head.")


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit the model (another architecture or width)."""


def is_classification_state_dict(state_dict: dict[str, Any]) -> bool:
    """True for a :class:`NASNet` classification state dict (keys ``stem.*``/``cells.*``)."""
    return any(k.startswith("stem.") for k in state_dict) and all(
        k.split(".", 1)[0] in ("stem", "cells", "classifier", "aux_head") for k in state_dict
    )


def classification_to_detectron2(
    state_dict: dict[str, torch.Tensor], cfg: CfgNode
) -> dict[str, torch.Tensor]:
    """Rename a classification state dict to the detector that ``cfg`` builds.

    ``stem.*`` and the first-stage ``cells.{i}.*`` go to ``backbone.`` (``backbone.bottom_up.``
    for the FPN backbone); with ``NASNetROIHeads`` the remaining cells go to
    ``roi_heads.second_stage.cells.{i}.*``. The classifier and the auxiliary head are dropped,
    and so are BN statistics the chosen ``MODEL.NASNET.NORM`` has no place for. Shapes are not
    checked here (the checkpointer does that against the model).
    """
    start = plan_nasnet(nasnet_config_from_cfg(cfg)).second_stage_split().start
    fpn = cfg.MODEL.BACKBONE.NAME == "build_nasnet_fpn_backbone"
    prefix = "backbone.bottom_up." if fpn else "backbone."
    second = (
        "roi_heads.second_stage."
        if cfg.MODEL.ROI_HEADS.NAME == "NASNetROIHeads" and not fpn
        else None
    )
    # BN statistics go wherever the detector keeps them: Detectron2's FrozenBatchNorm2d, made
    # from a BatchNorm2d, keeps running_mean/var and num_batches_tracked; GroupNorm has none.
    drop: tuple[str, ...] = ()
    if cfg.MODEL.NASNET.NORM == "GN":
        drop = ("num_batches_tracked", "running_mean", "running_var")
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_CLASSIFICATION_ONLY) or key.rsplit(".", 1)[-1] in drop:
            continue
        if key.startswith("stem."):
            out[prefix + key] = value
        elif key.startswith("cells."):
            i = int(key.split(".", 2)[1])
            if i < start or fpn:
                out[prefix + key] = value
            elif second is not None:
                out[second + key] = value
        else:
            raise ValueError(
                f"unexpected key {key!r} in a NASNet classification state dict; expected "
                "stem.*, cells.{i}.*, classifier.* or aux_head.*"
            )
    return out


class NASNetCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also takes NASNet classification checkpoints.

    ``cfg`` tells how classification names map to the detector. ``.pth``/``.pt`` files are read
    with ``torch.load(weights_only=True)``; a tensor whose shape differs from the model's raises
    :class:`CheckpointMismatchError` instead of being skipped silently.
    """

    def __init__(self, model: torch.nn.Module, save_dir: str = "", *, cfg: CfgNode, **kw) -> None:
        super().__init__(model, save_dir, **kw)
        self.cfg = cfg
        self._path = ""

    def load(self, path: str, *args, **kwargs):
        from nasnet_det.convert.hub import resolve_weights_path  # names: nasnet://SOURCE/ARCH

        path = resolve_weights_path(path)
        self._path = path
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path!r} does not exist (MODEL.WEIGHTS)")
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> dict[str, Any]:
        if not filename.endswith((".pth", ".pt")):
            return super()._load_file(filename)
        try:
            loaded = torch.load(filename, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise ValueError(
                f"checkpoint {filename!r} is not a weights-only torch file: "
                f"{str(e).splitlines()[0]}"
            ) from None
        if not isinstance(loaded, dict):
            raise ValueError(
                f"checkpoint {filename!r}: expected a dict, got {type(loaded).__name__}"
            )
        if "model" not in loaded:
            loaded = {"model": loaded}
        state = loaded["model"]
        if is_classification_state_dict(state):
            converted = classification_to_detectron2(state, self.cfg)
            logger.info(
                "%s is a NASNet classification checkpoint: %d tensors mapped to the detector",
                filename,
                len(converted),
            )
            # Only the weights: a classification run's optimizer/iteration must not resume here.
            return {"model": converted, "__author__": "nasnet_det classification"}
        return loaded

    def _load_model(self, checkpoint: dict[str, Any]):
        ckpt = checkpoint["model"]
        model_sd = self.model.state_dict()
        bad = [
            (k, tuple(v.shape), tuple(model_sd[k].shape))
            for k, v in ckpt.items()
            if k in model_sd and hasattr(v, "shape") and tuple(v.shape) != tuple(model_sd[k].shape)
        ]
        if bad:
            k, a, b = bad[0]
            raise CheckpointMismatchError(
                f"checkpoint {self._path!r} was made for a different architecture: {len(bad)} "
                f"tensor(s) differ in shape, e.g. {k}: checkpoint {list(a)} vs model {list(b)} "
                "(check MODEL.NASNET: PRESET, GENOTYPE, NUM_CELLS, NUM_CONV_FILTERS)"
            )
        incompatible = super()._load_model(checkpoint)
        missing = [k for k in incompatible.missing_keys if k.startswith("backbone.")]
        unexpected = [k for k in incompatible.unexpected_keys if k.startswith("backbone.")]
        n_backbone = sum(1 for k in model_sd if k.startswith("backbone."))
        if missing or unexpected:
            logger.warning(
                "backbone weights from %s: %d of %d tensors loaded; "
                "missing %d %s; unexpected %d %s",
                self._path,
                n_backbone - len(missing),
                n_backbone,
                len(missing),
                missing[:5],
                len(unexpected),
                unexpected[:5],
            )
        else:
            logger.info("backbone weights from %s: all %d tensors loaded", self._path, n_backbone)
        return incompatible
