"""The preset table: our networks' sizes beside the paper's (printed by ``make demo``)."""

from __future__ import annotations

from nasnet_det.nasnet import PRESETS, build_nasnet

#: Paper, Table 1 and 2 (params without the auxiliary head; mult-adds at the preset's size).
PAPER = {
    "nasnet_a_cifar": ("6@768", 3.3e6, None),
    "nasnet_a_mobile": ("4@1056", 5.3e6, 564e6),
    "nasnet_a_large": ("6@4032", 88.9e6, 23.8e9),
}


def preset_table(mult_adds: bool = False) -> str:
    """Markdown table of the presets: N@F, image size, parameters (ours vs paper)."""
    rows = [
        "| preset | N@F | image | params (ours) | params (paper) |"
        + (" mult-adds (ours) | mult-adds (paper) |" if mult_adds else ""),
        "| --- | --- | --- | --- | --- |" + (" --- | --- |" if mult_adds else ""),
    ]
    for name, (nf, p_params, p_madds) in PAPER.items():
        cfg = PRESETS[name]
        model = build_nasnet(name, use_aux_head=False).eval()
        n = sum(p.numel() for p in model.parameters())
        row = f"| {name} | {nf} | {cfg.image_size} | {n / 1e6:.2f}M | {p_params / 1e6:.1f}M |"
        if mult_adds:
            import torch
            from fvcore.nn import FlopCountAnalysis

            s = cfg.image_size
            fca = FlopCountAnalysis(model, torch.randn(1, cfg.in_chans, s, s))
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            paper = "-" if p_madds is None else f"{p_madds / 1e6:,.0f}M"
            row += f" {fca.total() / 1e6:,.0f}M | {paper} |"
        rows.append(row)
    return "\n".join(rows)
