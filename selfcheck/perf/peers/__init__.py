"""Runner scripts for the sampling comparison, one per implementation, each run as its own process:

    ours.py           our cascade's base stage (imagen.pipeline); the project's venv
    diffusers_peer.py diffusers UNet2DConditionModel + DDPMScheduler; the benchmark venv (.perf-venv)
    imagen_pytorch_peer.py  lucidrains' imagen-pytorch Unet + Imagen sampler; the benchmark venv

They share _common.py (stdlib + torch only: the benchmark venv does not have this package) and
print one line `PERF-RESULT {json}` that selfcheck/perf/sampling.py parses.
"""
