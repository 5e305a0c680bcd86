"""Where and in which precision to run: the one home of the device, precision and memory-format rules.

Every command that runs a network (sampling, sweeps, training, perf) asks `resolve()` here, so the
same machine always makes the same choice and the choice is recorded next to the results.

    precision "auto" -> "bf16" only where bf16 is fast, else "fp32":
        CUDA: bf16 when the GPU computes it natively (Ampere and newer);
        x86 CPU: bf16 when it has AVX512-BF16 or AMX (measured: bf16 autocast 2x faster than
            float32 on a 2-core EPYC with avx512_bf16, 2-3x with AMX), float32 otherwise (on an
            AVX2-only EPYC bf16 was emulated and 28x *slower*: 10.3 s vs 0.37 s per base forward);
        ARM CPU: bf16 when oneDNN reports bf16 instructions (BF16 extension), float32 otherwise.
    memory format "auto" -> channels_last on CPU (oneDNN convolutions are faster), contiguous on
        CUDA (channels_last cost 10-20 % of the paper-size U-Nets' throughput on an H200).

Explicit "bf16" / "fp32" are always honoured: the result is the same on every machine, only slower.

    compile "off" (the default) or a torch.compile mode. Compiled kernels are not the eager ones:
        their images differ in the last bits, so the mode is part of a sweep cell's identity, and
        the first call of each new input shape pays the compilation. Measured: on a 2-core EPYC
        (avx512_bf16) the shipped base U-Net compiles in 58 s and then runs 7 % faster in float32
        (87 -> 81 ms at batch 16), sr256 1.52x after 49 s: never worth it for a demo-size job, so
        CPU jobs stay eager. On an H200 (by hand) the paper-size base step went 405 -> 233 ms
        (39 -> 68 % of the bf16 peak) after an 81 s first call: it pays back after ~470 guided
        steps. `imagen-bench perf --only paper` measures that break-even per stage on the machine
        at hand; until it has run on a GPU here, compilation is asked for, never switched on by itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import dataclass

import torch

from common.errors import check_choice

from .config import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is present, else "cpu"; under torchrun (WORLD_SIZE > 1) a bare
    "cuda" is this rank's own GPU, cuda:LOCAL_RANK. Returns a device this machine has, or raises
    one clear line: "cpu", "cuda" or "cuda:N"."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    kind, _, index = str(device).partition(":")
    if kind == "cpu" and not index:
        return device
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r}: no CUDA GPU is available here; use "cpu"')
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    raise ValueError(f"unknown device {device!r}; choose from auto, cpu, cuda, cuda:N")


def cpu_capability() -> str:
    """torch's vector ISA for this CPU ("AVX2", "AVX512", ...), recorded with every result."""
    return torch.backends.cpu.get_cpu_capability()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def cpu_native_bf16() -> tuple[bool, str]:
    """(has native bf16 arithmetic, why) for this CPU. Detected, never timed: the answer is the
    same on every run of one machine, so auto-precision cells keep their identity across runs."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        cpu = getattr(torch, "cpu", None)
        if hasattr(cpu, "_is_avx512_bf16_supported") and hasattr(cpu, "_is_amx_tile_supported"):
            found = [
                n
                for n, ok in (("avx512_bf16", cpu._is_avx512_bf16_supported()), ("amx", cpu._is_amx_tile_supported()))
                if ok
            ]
        else:  # older torch: the kernel's flags say the same
            flags = _cpu_flags()
            found = [n for n in ("avx512_bf16", "amx_bf16") if n in flags]
        if found:
            return True, f"x86 CPU with {' + '.join(found)}"
        return False, f"x86 CPU without AVX512-BF16/AMX ({cpu_capability()}): bf16 would be emulated"
    if machine in ("aarch64", "arm64"):
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, "ARM CPU with bf16 instructions"
        return False, "ARM CPU without bf16 instructions"
    return False, f"{machine or 'unknown'} CPU: no native bf16 known"


def resolve_precision(precision: str, device: str) -> tuple[str, str]:
    """("bf16" | "fp32", why). Explicit choices are kept; "auto" follows the rules in the module doc."""
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision, "asked for"
    if torch.device(device).type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"auto: {torch.cuda.get_device_name(torch.device(device))} computes bf16 natively"
        return "fp32", f"auto: {torch.cuda.get_device_name(torch.device(device))} has no native bf16"
    native, why = cpu_native_bf16()
    return ("bf16" if native else "fp32"), f"auto: {why}"


def resolve_memory_format(memory_format: str, device: str) -> str:
    check_choice("memory_format", memory_format, MEMORY_FORMATS)
    if memory_format != "auto":
        return memory_format
    return "contiguous" if torch.device(device).type == "cuda" else "channels_last"


def torch_memory_format(name: str) -> torch.memory_format:
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def autocast(device: str, precision: str):
    """bf16 autocast on `device`'s type for a resolved "bf16"; nothing for "fp32". float32 on CUDA
    means float32: cuDNN's TF32 convolutions (on by default in torch) are switched off, so CUDA
    fp32 images stay within a few levels of CPU fp32 ones."""
    if check_choice("resolved precision", precision, ("bf16", "fp32")) == "fp32":
        if torch.device(device).type == "cuda":
            torch.backends.cudnn.allow_tf32 = False
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class Placement:
    """A resolved (device, precision, memory format) and why: what is recorded next to results."""

    device: str
    precision: str  # "bf16" | "fp32"
    memory_format: str  # "channels_last" | "contiguous"
    reason: str
    cpu_capability: str

    def autocast(self):
        return autocast(self.device, self.precision)

    def record(self) -> dict:
        out = {
            "device": self.device,
            "precision": self.precision,
            "memory_format": self.memory_format,
            "precision_reason": self.reason,
            "cpu_capability": self.cpu_capability,
        }
        if torch.device(self.device).type == "cuda":
            out["gpu"] = torch.cuda.get_device_name(torch.device(self.device))
        return out

    def summary(self) -> dict:
        """What a metric or an outside model records beside its numbers: the device kind ("cuda",
        not "cuda:3": every rank of one torchrun run records the same), the precision and why, and
        the GPU's name on CUDA."""
        out = {"device": torch.device(self.device).type, "precision": self.precision, "precision_reason": self.reason}
        if out["device"] == "cuda":
            out["gpu"] = torch.cuda.get_device_name(torch.device(self.device))
        return out


def resolve(device: str = "cpu", precision: str = "auto", memory_format: str = "auto") -> Placement:
    device = resolve_device(device)
    value, reason = resolve_precision(precision, device)
    return Placement(device, value, resolve_memory_format(memory_format, device), reason, cpu_capability())


def use_deterministic_algorithms() -> None:
    """Bit-exact reruns on CUDA (same inputs, same batch composition): torch's deterministic
    kernels only, cuDNN autotuning off, cuBLAS with a fixed workspace. Process-wide, and slower;
    on CPU torch's kernels are deterministic already, so this changes nothing there."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS first starts
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def compile_unet(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`module` itself for "off", else torch.compile(module, mode=mode): the compiled wrapper shares
    the module's parameters (checkpoints are saved from the module, never the wrapper)."""
    if check_choice("compile", mode, COMPILE_MODES) == "off":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode)


def compile_record(mode: str) -> dict:
    """What a result records of compilation: {"compile": mode} when on, nothing for "off", so
    eager results (sweep cell ids, training runtime records) stay what they were before it existed."""
    return {} if check_choice("compile", mode, COMPILE_MODES) == "off" else {"compile": mode}
