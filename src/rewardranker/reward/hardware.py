"""What the hardware can do: native bfloat16 or not (precision `auto`), and how many threads to use.

bf16 autocast is 2-3x faster than fp32 on CPUs with AVX512-BF16 or AMX, but about 7x slower on AVX2-only
CPUs, where it is emulated (issue 12); so `auto` picks bf16 only where the device has it natively.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_LOGGED: set[tuple[Any, ...]] = set()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where it cannot be read, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def torch_cpu_capability() -> str:
    """The vector ISA torch dispatches to (AVX2, AVX512, ...; lowered by ATEN_CPU_CAPABILITY)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def native_bf16(device: str) -> tuple[bool, str]:
    """(whether `device` computes bfloat16 natively, the reason in words)."""
    import torch

    if device.startswith("cuda"):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "CUDA device with bf16" if ok else "CUDA device without bf16"
    capability = torch_cpu_capability()
    native = sorted(f for f in NATIVE_BF16_CPU_FLAGS if f in cpu_flags())
    if not native:
        return False, f"CPU without native bfloat16 (no {'/'.join(NATIVE_BF16_CPU_FLAGS)}; torch ISA {capability})"
    if not capability.upper().startswith("AVX512"):
        return False, f"CPU has {', '.join(native)} but torch dispatches to {capability}"
    return True, f"CPU with {', '.join(native)} (torch ISA {capability})"


def resolve_bf16(setting: bool | str, device: str = "cpu", log: bool = True) -> bool:
    """`True`/`False` as given (an explicit choice wins); "auto": bf16 only where `device` has it natively.

    The choice is printed once per process and setting, on stderr.
    """
    if isinstance(setting, bool):
        chosen, reason = setting, "set explicitly"
    else:
        chosen, reason = native_bf16(device)
    key = (setting, device)
    if log and key not in _LOGGED:
        _LOGGED.add(key)
        print(f"reward model precision: {'bf16' if chosen else 'fp32'} on {device} "
              f"(bf16: {setting}; {reason})", file=sys.stderr, flush=True)
    return chosen


def resolve_runtime(setting: str, device: str = "cpu", frozen: bool = True, bf16: bool | str = "auto",
                    log: bool = True) -> str:
    """"torch" or "onnx" for a backbone on `device`: ONNX Runtime only for a frozen backbone on CPU; "auto" also
    needs onnxruntime to import and bf16 not forced on (ORT has no bf16 CPU path). Falling back to torch because
    onnxruntime is missing is printed once, with why (the encoder prints what it runs)."""
    if setting == "torch":
        chosen, reason = "torch", "set explicitly"
    elif not device.startswith("cpu"):
        chosen, reason = "torch", f"{device} device"
    elif not frozen:
        chosen, reason = "torch", "backbone is trained"
    elif setting == "auto" and bf16 is True:
        chosen, reason = "torch", "bf16 set explicitly"
    else:
        from rewardranker.reward.onnx_backend import available

        ok, why = available()
        chosen, reason = ("onnx", why) if ok else ("torch", why)
        key = ("runtime", setting)
        if not ok and log and key not in _LOGGED:
            _LOGGED.add(key)
            print(f"reward model runtime: torch (runtime: {setting}; {reason})", file=sys.stderr, flush=True)
    return chosen


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def under_torchrun() -> bool:
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) or 1) > 1


def configure_threads() -> int:
    """Set torch's intra-op threads: OMP_NUM_THREADS if the user set it, 1 per process under torchrun,
    else the cores actually available. Returns the number set."""
    import torch

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        n = int(env)
    elif under_torchrun():
        n = 1
    else:
        n = available_cores()
    torch.set_num_threads(n)
    return n


def describe() -> dict[str, Any]:
    """Hardware facts to print next to timings."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    flags = cpu_flags()
    return {"cpu": model or platform.processor(), "cores_available": available_cores(),
            "torch_isa": torch_cpu_capability(), "native_bf16_cpu": native_bf16("cpu")[0],
            "flags": sorted(f for f in flags if f.startswith(("avx", "amx")))}
