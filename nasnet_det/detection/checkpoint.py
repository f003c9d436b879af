"""Loading NASNet weights into the detector: classification checkpoints and Detectron2 ones.

:func:`classification_to_detectron2` maps a :func:`build_nasnet` state dict (``stem.*``,
``cells.{i}.*``, ``classifier.*``, ``aux_head.*``) to the detector's names;
:class:`NASNetCheckpointer` lets ``MODEL.WEIGHTS`` be such a classification checkpoint (a
``.pth`` with a ``"model"`` entry) or a Detectron2 one, loads with ``weights_only=True`` and
refuses a checkpoint made for another architecture with one error.

Safety: weight files are checked against their archive CRCs before loading; a pickle
(``.pkl``, Detectron2's own format, or a ``.pth`` holding objects beyond tensors) is refused
unless ``allow_pickle`` (``--allow-pickle`` or ``NASNET_DET_ALLOW_PICKLE=1``); ``last_checkpoint``
may only name a file inside the output folder; every checkpoint and ``last_checkpoint`` are
written atomically; ``--resume`` skips a damaged checkpoint for the newest good one.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode

from nasnet_det.convert import check_weights_file, load_state_dict_file
from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.io import atomic_save_torch, atomic_write_text
from nasnet_det.nasnet import plan_nasnet

__all__ = [
    "ALLOW_PICKLE_ENV",
    "CheckpointMismatchError",
    "allow_pickle_from_env",
    "check_weights",
    "NASNetCheckpointer",
    "classification_to_detectron2",
    "is_classification_state_dict",
]

logger = logging.getLogger(__name__)

_CLASSIFICATION_ONLY = ("classifier.", "aux_head.")

#: Environment variable that grants unpickling of MODEL.WEIGHTS / resume files (as --allow-pickle).
ALLOW_PICKLE_ENV = "NASNET_DET_ALLOW_PICKLE"
# The variable works for every tool; only train_net has the flag (predict and export do not).
_OPT_IN = f"{ALLOW_PICKLE_ENV}=1 (or train_net.py --allow-pickle)"
_CHECKPOINT_NAME = re.compile(r"model_(\d+|final)\.pth$")


def allow_pickle_from_env() -> bool:
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_weights(
    path: str, allow_pickle: bool = False, what: str = "MODEL.WEIGHTS", *, load: bool = False
) -> None:
    """Check the weights to start from before any work: a local file exists, is a file, not
    empty, its archive CRCs match, and it is no pickle unless ``allow_pickle``; with ``load`` it
    is also read (weights only), so objects in a ``.pth`` are refused before any output. A
    weight name (``nasnet://SOURCE/ARCH``) is resolved here (downloaded once, or found in the
    cache), so an unknown name or one that cannot be fetched offline is refused before any
    output too; other URLs (``http://``, ``detectron2://``) are refused: they hold no NASNet
    weights we can check."""
    from nasnet_det.convert.hub import SCHEME, parse_weight_name, resolve_weights_path

    if not path:
        return
    if path.startswith(SCHEME) or parse_weight_name(path) is not None:
        path = resolve_weights_path(path)  # unknown names and failed downloads raise here
    elif "://" in path:
        raise ValueError(
            f"{what} {path!r} is a URL; it must be a local weights file or a weight name "
            f"({SCHEME}timm/nasnetalarge, {SCHEME}pretrainedmodels/nasnetamobile, ...): "
            "download the file and give its path"
        )
    kind = check_weights_file(path, f"{what} file")
    if load and not path.endswith(".pkl"):
        load_state_dict_file(path, allow_pickle, what=f"{what} file", opt_in=_OPT_IN)
    # A legacy (non-zip) torch file is read by torch's weights-only unpickler, which refuses
    # objects; Detectron2's .pkl reader is plain pickle.load and needs the opt-in.
    if kind == "pickle" and path.endswith(".pkl") and not allow_pickle:
        raise ValueError(
            f"{what} file {path!r} is a pickle (Detectron2's .pkl format); "
            f"unpickling can run code, so it is refused. Use {_OPT_IN} only for a file you trust"
        )


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

    def __init__(
        self,
        model: torch.nn.Module,
        save_dir: str = "",
        *,
        cfg: CfgNode,
        allow_pickle: bool = False,
        **kw,
    ) -> None:
        super().__init__(model, save_dir, **kw)
        self.cfg = cfg
        self.allow_pickle = allow_pickle
        self._path = ""

    # -- writing: every file appears whole or not at all ------------------------------------
    def save(self, name: str, **kwargs: Any) -> None:
        """Detectron2's ``save`` through :func:`nasnet_det.io.atomic_save_torch`; then
        ``last_checkpoint`` names it (also atomic), so it always names a complete file. Only
        ``model_{iter}``/``model_final`` are tagged: they are where ``--resume`` continues."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        atomic_save_torch(data, save_file)
        if _CHECKPOINT_NAME.search(basename):
            # Only the training schedule's checkpoints are resume points: model_best.pth (an
            # earlier iteration, kept for its AP) must not become what --resume loads.
            self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(
            os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename, "checkpoint tag"
        )

    # -- resuming: only files inside save_dir, the newest good one ------------------------
    def get_checkpoint_file(self) -> str:
        """The file ``last_checkpoint`` names; it must lie inside ``save_dir``."""
        tag = os.path.join(self.save_dir, "last_checkpoint")
        try:
            name = Path(tag).read_bytes().decode("utf-8").strip()
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{tag!r} cannot be read: {e}") from None
        root = os.path.realpath(self.save_dir)
        target = os.path.realpath(os.path.join(self.save_dir, name))
        if not name or os.path.commonpath([root, target]) != root or target == root:
            raise ValueError(
                f"{tag!r} names {name!r}, which is not a file inside OUTPUT_DIR {root!r}; "
                "refusing to load it (write the name of a checkpoint in that folder)"
            )
        return target

    def good_checkpoint_file(self, warn: bool = True, load: bool = False) -> str:
        """The checkpoint ``--resume`` loads: the one ``last_checkpoint`` names if it is whole,
        else the newest whole ``model_*.pth`` in ``save_dir`` (with a warning); one
        ``ValueError`` if there is none."""
        named = self.get_checkpoint_file()
        candidates = [named] + sorted(
            (f for f in glob.glob(os.path.join(self.save_dir, "model_*.pth")) if f != named),
            key=_iteration_of,
            reverse=True,
        )
        problems = []
        for path in candidates:
            if not _CHECKPOINT_NAME.search(os.path.basename(path)) and path != named:
                continue
            try:
                check_weights(path, self.allow_pickle, "checkpoint", load=load)
            except ValueError as e:
                problems.append(str(e))
                continue
            if problems and warn:
                logger.warning(
                    "%s; resuming from the newest good checkpoint %s instead", problems[0], path
                )
            return path
        raise ValueError(
            f"no usable checkpoint to resume from in {self.save_dir!r}: {problems[0]}"
            + (f" (and {len(problems) - 1} more damaged)" if len(problems) > 1 else "")
        )

    def resume_or_load(self, path: str, *, resume: bool = True) -> dict[str, Any]:
        if resume and self.has_checkpoint():
            _remove_stale_temporaries(self.save_dir)
            return self.load(self.good_checkpoint_file())
        return self.load(path, checkpointables=[])

    # -- reading: checked, weights only unless the user opts in -----------------------------
    def load(self, path: str, *args, **kwargs):
        from nasnet_det.convert.hub import resolve_weights_path  # names: nasnet://SOURCE/ARCH

        path = resolve_weights_path(path)
        self._path = path
        if path and "://" not in path:
            check_weights(path, self.allow_pickle)
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl"):
            if not self.allow_pickle:  # checked in load(); kept for direct callers
                check_weights(filename, False)
            return super()._load_file(filename)  # Detectron2's pickle reader, opted in
        loaded = load_state_dict_file(
            filename, allow_pickle=self.allow_pickle, what="checkpoint", opt_in=_OPT_IN
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
        self.incompatible = incompatible  # what the last load left out (the demo reports it)
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


def _iteration_of(path: str) -> float:
    m = _CHECKPOINT_NAME.search(os.path.basename(path))
    if not m:
        return -1.0
    return float("inf") if m.group(1) == "final" else float(m.group(1))


def _remove_stale_temporaries(folder: str) -> None:
    """Temporary files of checkpoint writes a kill interrupted (``.model_*.pth.*.tmp``)."""
    for tmp in glob.glob(os.path.join(folder, ".model_*.pth.*.tmp")) + glob.glob(
        os.path.join(folder, ".last_checkpoint.*.tmp")
    ):
        logger.info("removing %s, left by an interrupted checkpoint write", tmp)
        try:
            os.unlink(tmp)
        except OSError:
            pass
