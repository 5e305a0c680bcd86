"""lucidrains' imagen-pytorch (https://github.com/lucidrains/imagen-pytorch), runs in the benchmark
venv (.perf-venv, `make perf-env`): its Unet configured like our base stage (3 levels, channel
mults 1-2-2, 2-2-3 residual blocks, self-attention at the two lower levels, text cross-attention at
all, 4 heads x 32, conditioning width 256, 32 x 384 text context) with the base width chosen so its
parameter count matches ours, sampled by its own Imagen.sample loop: one U-Net, image size 16,
`timesteps = steps` (its continuous-time sampler then takes exactly `steps` steps), cosine
schedule, noise prediction, dynamic thresholding, and its own classifier-free guidance via
cond_scale (two forward passes per step, conditional then null, with its parallel-component removal).

Import-time stand-ins (here only, never in the imagen-bench package):
  * the package's __init__ imports its trainer (accelerate, datasets, pytorch-warmup, fsspec,
    torchvision via data.py): we load the `imagen_pytorch.imagen_pytorch` module alone by
    registering the package without running its __init__;
  * `imagen_pytorch.imagen_pytorch` does `import torchvision.transforms as T`, used only to
    return PIL images (T.ToPILImage, not used here). PyPI's torchvision cannot import on this CPU
    torch, so a minimal stand-in `torchvision` / `torchvision.transforms` module is inserted into
    sys.modules before the import; touching anything in it raises;
  * its Unet's signature default `text_embed_dim = get_encoded_dim('google/t5-v1_1-base')` asks
    the Hugging Face hub for the T5 config at import time (no hub here): the known d_model (768)
    is put in its T5 config cache first; we pass text_embed_dim=384 explicitly anyway.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from importlib.metadata import version
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    StageBench,
    autocast,
    closest_width,
    count_flops,
    emit,
    param_count,
    parse_settings,
    random_context,
    time_variants,
)


class _Unavailable(types.ModuleType):
    def __getattr__(self, name):
        raise RuntimeError(
            f"{self.__name__}.{name}: torchvision stand-in of the perf runner (not installed in the benchmark venv)"
        )


def import_imagen_pytorch():
    spec = importlib.util.find_spec("imagen_pytorch")
    if spec is None:
        raise SystemExit("imagen-pytorch is not installed in this venv (make perf-env)")
    pkg = types.ModuleType("imagen_pytorch")
    pkg.__path__ = list(spec.submodule_search_locations)  # a package without running its __init__
    sys.modules["imagen_pytorch"] = pkg
    import transformers  # before the stand-in: transformers probes for a real torchvision

    t5 = importlib.import_module("imagen_pytorch.t5")
    t5.T5_CONFIGS.setdefault(t5.DEFAULT_T5_NAME, {"config": transformers.T5Config(d_model=768)})
    if importlib.util.find_spec("torchvision") is not None:
        import imagen_pytorch.imagen_pytorch as ip

        return ip
    tv, tvt = _Unavailable("torchvision"), _Unavailable("torchvision.transforms")
    tv.__dict__["transforms"] = tvt  # set directly: __getattr__ only answers missing names
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tvt})
    try:
        import imagen_pytorch.imagen_pytorch as ip
    finally:  # the stand-in is seen by that one import only
        del sys.modules["torchvision"], sys.modules["torchvision.transforms"]
    return ip


def main() -> int:
    s: StageBench = parse_settings()
    ip = import_imagen_pytorch()

    def build_unet(dim: int):
        return ip.Unet(
            dim=dim,
            dim_mults=(1, 2, 2),
            num_resnet_blocks=(2, 2, 3),
            layer_attns=(False, True, True),
            layer_cross_attns=(True, True, True),
            text_embed_dim=s.text_dim,
            cond_dim=256,
            attn_heads=4,
            attn_dim_head=32,
            max_text_len=s.text_len,
            channels=s.channels,
            cond_on_text=True,
        )

    dim, _ = closest_width(build_unet, s.param_target, range(16, 129, 8))
    unet = build_unet(dim)
    imagen = (
        ip.Imagen(
            unets=(unet,),
            image_sizes=(s.resolution,),
            timesteps=s.steps,
            text_embed_dim=s.text_dim,
            channels=s.channels,
            noise_schedules="cosine",
            pred_objectives="noise",
            dynamic_thresholding=True,
            dynamic_thresholding_percentile=0.995,
            cond_drop_prob=0.1,
        )
        .to(s.device)
        .eval()
    )
    text, mask = random_context(s)

    def make_loop(bf16: bool, channels_last: bool):
        imagen.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

        def loop():
            with autocast(s.device, bf16):
                return imagen.sample(
                    text_embeds=text, text_masks=mask, cond_scale=s.guidance, use_tqdm=False, device=s.device
                )

        return loop

    timing = time_variants(s, make_loop)
    z = torch.randn(s.batch, s.channels, s.resolution, s.resolution, device=s.device)
    t = torch.rand(s.batch, device=s.device)
    # one sampling step = forward_with_cond_scale: two U-Net forwards of batch B (cond, then null)
    flops_step = count_flops(
        lambda: unet.forward_with_cond_scale(z, t, text_embeds=text, text_mask=mask, cond_scale=s.guidance)
    )
    emit(
        {
            "name": "imagen-pytorch",
            "library": f"imagen-pytorch {_version()}",
            "params": param_count(unet),
            "flops_per_loop": flops_step * s.steps,
            "unet_forwards_per_step": 2 if s.guidance != 1 else 1,
            "unet_batch": s.batch,
            "config": {
                "dim": dim,
                "dim_mults": [1, 2, 2],
                "num_resnet_blocks": [2, 2, 3],
                "layer_attns": [False, True, True],
                "layer_cross_attns": [True, True, True],
                "sampler": "Imagen.sample (its DDPM, continuous times)",
                "guidance": "its cond_scale path",
                "thresholding": "dynamic 0.995",
                "stand_ins": ["package __init__ skipped", "torchvision stand-in", "T5 config cache seeded"],
            },
            **timing,
        }
    )
    return 0


def _version() -> str:
    return version("imagen-pytorch")


if __name__ == "__main__":
    sys.exit(main())
