"""Training options of tools/train_net.py on the instant-test config (tiny widths, CPU): each
option runs a few iterations; AMP autocasts to bf16 on CPU; the EMA differs from the raw
weights and both are evaluated; the best checkpoint is kept; drop path advances under all."""

import pytest
import torch

from nasnet_det.cells import CellStack
from nasnet_det.detection import training
from nasnet_det.detection.engine import Trainer, load_config

CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
# The options are under test, not the network: one cell per stack, 8 filters, 64 px, few ROIs.
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8",
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
        "INPUT.MAX_SIZE_TEST", "64", "SOLVER.IMS_PER_BATCH", "1",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "16",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "8"]  # fmt: skip


def make_trainer(tmp_path, *opts):
    cfg = load_config(CONFIG, [*TINY, "OUTPUT_DIR", str(tmp_path / "out"), *opts])
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name,cls", [("SGD", torch.optim.SGD), ("ADAMW", torch.optim.AdamW)])
def test_optimizer_from_config_trains(tmp_path, name, cls):
    t = make_trainer(tmp_path, "SOLVER.OPTIMIZER", name, "SOLVER.MAX_ITER", "2",
                     "DATASETS.TEST", "()", "SOLVER.BETAS", "(0.8, 0.99)")  # fmt: skip
    assert isinstance(t.optimizer, cls)
    if cls is torch.optim.AdamW:
        assert t.optimizer.param_groups[0]["betas"] == (0.8, 0.99)
    before = weights(t.model)
    t.train()
    after = t.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if "weight" in k)


def test_unknown_optimizer_is_one_value_error(tmp_path):
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER must be one of SGD, ADAMW, got 'ADAM'"):
        make_trainer(tmp_path, "SOLVER.OPTIMIZER", "ADAM")


def test_amp_autocasts_to_bf16_on_cpu_and_drop_path_advances(tmp_path, monkeypatch):
    seen = []
    t = make_trainer(tmp_path, "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", "3",
                     "MODEL.NASNET.DROP_PATH_KEEP_PROB", "0.7", "MODEL_EMA.ENABLED", "True",
                     "DATASETS.TEST", "()")  # fmt: skip
    assert isinstance(t._trainer, training.AutocastTrainer)
    assert t._trainer.precision == torch.bfloat16 and not t._trainer.grad_scaler.is_enabled()
    forward = t.model.forward

    def spy(*a, **k):
        seen.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
             [m.drop_path_progress for m in t.model.modules() if isinstance(m, CellStack)])
        )  # fmt: skip
        return forward(*a, **k)

    monkeypatch.setattr(t.model, "forward", spy)
    t.train()
    assert [s[:2] for s in seen] == [(True, torch.bfloat16)] * 3
    # DropPathHook: progress iter / MAX_ITER on every CellStack, before each step.
    assert [s[2] for s in seen] == [[p, p] for p in (0.0, 1 / 3, 2 / 3)]
    assert all(torch.isfinite(v).all() for v in t.model.state_dict().values())


@pytest.mark.slow
def test_ema_differs_from_raw_both_evaluated_best_checkpoint_kept(tmp_path):
    t = make_trainer(tmp_path, "MODEL_EMA.ENABLED", "True", "MODEL_EMA.DECAY", "0.9",
                     "SOLVER.MAX_ITER", "3", "SOLVER.BEST_CHECKPOINTER.ENABLED", "True",
                     "SOLVER.BEST_CHECKPOINTER.METRIC", "ema/bbox/AP50")  # fmt: skip
    ema_hook = next(h for h in t._hooks if isinstance(h, training.EMAHook))
    t.train()
    raw, ema = t.model.state_dict(), ema_hook.ema.module.state_dict()
    floats = [k for k, v in raw.items() if v.dtype.is_floating_point]
    assert any(not torch.allclose(raw[k], ema[k]) for k in floats)
    # The EMA's recursion by hand: 3 updates from the loaded weights with TF's warm-up decay.
    assert ema_hook.ema.num_updates == 3
    results = t._last_eval_results
    assert {"AP", "AP50"} <= set(results["bbox"]) and {"AP", "AP50"} <= set(results["ema"]["bbox"])
    out = tmp_path / "out"
    assert (out / "model_final.pth").is_file() and (out / "model_best.pth").is_file()
    saved = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    torch.testing.assert_close(saved["model_ema"]["model"], ema)


def test_ema_follows_the_tf_recursion():
    model = torch.nn.Linear(2, 2)
    hook = training.EMAHook(model, decay=0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    hook.ema.update(model)  # first update: d = min(0.5, 1 / 10) = 0.1
    expected = 0.1 * start["weight"] + 0.9 * model.weight
    torch.testing.assert_close(hook.ema.module.weight, expected)
