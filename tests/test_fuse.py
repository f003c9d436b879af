"""Inference fast paths give the plain network's outputs: BN folding, channels_last, compile."""

import copy
import warnings

import pytest
import torch
from torch import nn

from nasnet_det import build_nasnet
from nasnet_det.compile import compile_module, compile_status
from nasnet_det.fuse import channels_last_pays, fast_inference, fold_bn, fuse_for_inference


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model


def tiny(preset="nasnet_a_mobile", **kw):
    kw = {"num_classes": 10, "num_cells": 1, "num_conv_filters": 8, **kw}
    return randomize_bn(build_nasnet(preset, **kw)).eval()


def n_bn(model):
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(
    "preset,kw,size",
    [
        ("nasnet_a_mobile", {}, 67),  # odd size: the asymmetric stride-2 SAME pads
        ("nasnet_a_large", {"pool_pad": "timm"}, 64),  # skip_reduction_layer_input, timm pools
        ("nasnet_a_cifar", {}, 32),  # SAME-padded stem conv
    ],
)
def test_fused_classifier_gives_the_plain_logits(preset, kw, size):
    plain = tiny(preset, **kw)
    fused = fuse_for_inference(copy.deepcopy(plain))
    # Every BN run in eval is folded: only the auxiliary head's (unused in eval) are left.
    aux = n_bn(plain.aux_head) if plain.aux_head is not None else 0
    assert fused.fused_bn_count == n_bn(plain) - aux > 0
    assert n_bn(fused) == aux
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref, out = plain(x), fused(x)
    assert ref.abs().max() > 1e-2  # not vacuous
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


def test_fused_random_genotype_covers_all_13_ops(random_genotype):
    import random

    g = random_genotype(random.Random(3))
    plain = tiny(genotype=g)
    fused = fuse_for_inference(copy.deepcopy(plain))
    x = torch.randn(1, 3, 45, 53)  # non-square, odd: mixed symmetric/asymmetric padding
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), atol=1e-4, rtol=0)


def test_training_batch_norm_is_not_folded():
    model = tiny().train()
    before = copy.deepcopy(model.state_dict())
    fuse_for_inference(model)
    assert model.fused_bn_count == 0
    assert n_bn(model) > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fold_bn_splits_channels_over_concatenated_convs():
    convs = [nn.Conv2d(3, 2, 1, bias=False).eval(), nn.Conv2d(3, 3, 1, bias=False).eval()]
    bn = randomize_bn(nn.Sequential(nn.BatchNorm2d(5))).eval()[0]
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        ref = bn(torch.cat([c(x) for c in convs], 1))
        assert fold_bn(convs, bn)
        out = torch.cat([c(x) for c in convs], 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="5-channel batch norm"):
        fold_bn(convs[:1], bn)


@pytest.mark.parametrize("fuse", [False, True])
def test_channels_last_inputs_give_the_same_logits(fuse):
    plain = tiny()
    model = copy.deepcopy(plain)
    if fuse:
        fuse_for_inference(model, channels_last=True)
    else:
        model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 67, 67)
    with torch.no_grad():
        ref = plain(x)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("channels_last", [None, False])
def test_default_fast_path_gives_the_plain_logits(channels_last):
    """fast_inference (what the export and the detector entry points run): BN folded and, where
    it pays (None: on CPU), channels_last weights fed plain NCHW inputs."""
    plain = tiny()
    model = fast_inference(copy.deepcopy(plain).train(), channels_last=channels_last)
    assert not model.training and model.fast_inference and model.fused_bn_count > 0
    assert fast_inference(model) is model and model.fused_bn_count > 0  # once only
    cl = channels_last_pays("cpu") if channels_last is None else channels_last
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last) is cl
    x = torch.randn(2, 3, 67, 67)
    with torch.no_grad():
        ref, out = plain(x), model(x)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


@pytest.mark.slow  # Dynamo traces the whole network before the backend fails
def test_compile_falls_back_to_eager_when_the_backend_fails():
    plain = tiny()
    model = compile_module(copy.deepcopy(plain), backend=_failing_backend)
    x = torch.randn(1, 3, 67, 67)
    with torch.no_grad(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = model(x)
        again = model(x)  # no second attempt, no second warning
    assert compile_status(model).startswith("fallback: BackendCompilerFailed")
    assert sum("torch.compile of NASNet failed" in str(m.message) for m in w) == 1
    with torch.no_grad():
        ref = plain(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(again, ref, atol=1e-4, rtol=0)
    # A bad input still fails as in eager (and is not mistaken for a compiler error).
    with pytest.raises(RuntimeError, match="channels"):
        model(torch.randn(1, 4, 67, 67))


@pytest.mark.slow
def test_compiled_fused_classifier_gives_the_plain_logits():
    """Dynamo traces the fused network into one graph (AOT autograd's eager backend: Inductor's
    C++ build of it takes minutes on a 2-core CPU and is measured in bench/model_speed.py)."""
    plain = tiny()
    model = compile_module(fuse_for_inference(copy.deepcopy(plain)), backend="aot_eager")
    x = torch.randn(1, 3, 67, 67)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(x)
        ref = plain(x)
    assert compile_status(model) == "compiled"
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    # The module keeps its type and parameter names (checkpoints still load).
    assert type(model).__name__ == "NASNet"
    assert "classifier.weight" in model.state_dict()
