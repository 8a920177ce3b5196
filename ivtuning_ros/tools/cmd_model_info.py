"""`ivtuning model-info`: how big a model preset is and where its parameters train."""

from __future__ import annotations

import argparse

from ivtuning_ros.measure import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "model-info",
        help="parameters, trainable share, FLOPs and rank schedule of a model config",
        description="Counts on the meta device: no weights are loaded or needed.",
    )
    p.add_argument("--config", required=True, help="a preset name or a model YAML file")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.set_defaults(func=run)


def format_info(info: dict) -> str:
    m = 1e6
    lines = [
        f"model {info['name']}: {info['backbone']} ({info['weights']}), {info['task']}, "
        f"mode {info['mode']}, input {info['input_size'][0]}x{info['input_size'][1]}",
        f"  parameters    total {info['total'] / m:9.3f} M",
        f"                backbone {info['backbone_params'] / m:6.3f} M",
        f"                prompter {info['prompter'] / m:6.3f} M ({info['prompter']:,})",
        f"                head {info['head'] / m:10.3f} M",
        f"  trainable     {info['trainable'] / m:9.3f} M ({info['trainable']:,})",
        f"  trainable share of the backbone (head apart): "
        f"{100 * info['trainable_share_of_backbone']:.2f} %",
        f"  FLOPs (one RGB + thermal pair): {info['flops'] / 1e9:.3f} G "
        f"(RGB-only backbone {info['flops_rgb_backbone'] / 1e9:.3f} G, "
        f"head {info['flops_head'] / 1e9:.3f} G)",
    ]
    if info["adapter_ranks"]:
        lines += [
            f"  rank schedule over {info['tuned_layers']} tuned layers "
            f"(input prompter rank {info['input_rank']}):",
            f"    hybrid adapters:  {info['adapter_ranks']}",
            f"    internal prompts: {info['prompt_ranks']}",
        ]
    else:
        lines.append(f"  no prompter in mode {info['mode']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ivtuning_ros.model import load_model_config
    from ivtuning_ros.model.stats import model_info

    info = model_info(load_model_config(args.config))
    print(format_info(info))
    write_json(args.json, info)
    return 0
