"""What a host offers: GPUs (NVML, else ``nvidia-smi``, else a declared list), CPUs,
memory, labels and price. Pure (no Django), so it runs anywhere a worker starts.

``MODELGATE_WORKER_GPUS`` declares GPUs on a host without NVML, which is also how
several "GPU hosts" are simulated on one machine: ``"A100:40960,A100:40960"`` (type and
memory in MiB per GPU), or ``"none"`` for a CPU-only worker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    gpu_type: str
    memory_mb: int
    uuid: str = ""


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[Gpu, ...]
    cpus: int
    memory_mb: int
    labels: dict[str, str] = field(default_factory=dict)
    cost_per_hour: float = 0.0
    source: str = "declared"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TYPE_PATTERN = re.compile(
    r"\b(A100|A800|A10G|A10|A30|A40|H100|H800|H200|H20|B200|GH200|L40S|L40|L20|L4|T4|V100|P100|K80"
    r"|RTX\s?\d{4}\w*|A[2-6]\d{3})\b",
    re.I,
)


def gpu_type_of(name: str) -> str:
    """A short type from a vendor name: ``NVIDIA A100-SXM4-80GB`` → ``A100``."""
    match = _TYPE_PATTERN.search(name.replace("NVIDIA", " "))
    return match.group(1).upper().replace(" ", "") if match else name.strip() or "GPU"


def _from_nvml() -> tuple[Gpu, ...] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no GPU: NVML raises its own error classes
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(Gpu(index, name, gpu_type_of(name), int(memory), uuid))
        return tuple(gpus)
    finally:
        pynvml.nvmlShutdown()


def _from_nvidia_smi() -> tuple[Gpu, ...] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in output.strip().splitlines():
        index, name, memory, uuid = (part.strip() for part in line.split(","))
        gpus.append(Gpu(int(index), name, gpu_type_of(name), int(float(memory)), uuid))
    return tuple(gpus)


def parse_declared_gpus(value: str) -> tuple[Gpu, ...]:
    """``"A100:40960,T4:15360"`` → GPUs 0 and 1; ``"none"`` or ``""`` → no GPU."""
    if value.strip().lower() in {"", "none", "0"}:
        return ()
    gpus = []
    for index, item in enumerate(part.strip() for part in value.split(",")):
        gpu_type, _, memory = item.partition(":")
        if not gpu_type or not (memory.isascii() and memory.isdigit()):
            raise ValueError(f"MODELGATE_WORKER_GPUS item {item!r} must look like A100:40960 (type:MiB)")
        gpus.append(Gpu(index, gpu_type, gpu_type_of(gpu_type), int(memory)))
    return tuple(gpus)


def parse_labels(value: str) -> dict[str, str]:
    """``"zone=eu,disk=nvme"`` → ``{"zone": "eu", "disk": "nvme"}``."""
    labels = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"MODELGATE_WORKER_LABELS item {item!r} must look like key=value")
        labels[key.strip()] = val.strip()
    return labels


def _memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return 0


def _whole(environ: dict[str, str], name: str) -> int | None:
    """A positive whole number from the environment; unset or empty means detect it."""
    raw = environ.get(name) or ""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


def detect(environ: dict[str, str] | None = None) -> Inventory:
    """The host's inventory; a declared GPU list wins over what NVML sees."""
    environ = dict(os.environ if environ is None else environ)
    declared = environ.get("MODELGATE_WORKER_GPUS")
    if declared is not None:
        gpus, source = parse_declared_gpus(declared), "declared"
    elif (found := _from_nvml()) is not None:
        gpus, source = found, "nvml"
    elif (found := _from_nvidia_smi()) is not None:
        gpus, source = found, "nvidia-smi"
    else:
        gpus, source = (), "none"
    cost = environ.get("MODELGATE_WORKER_COST_PER_HOUR", "0")
    try:
        cost_per_hour = float(cost)
    except ValueError as exc:
        raise ValueError(f"MODELGATE_WORKER_COST_PER_HOUR={cost!r} is not a number") from exc
    return Inventory(
        gpus=gpus,
        cpus=_whole(environ, "MODELGATE_WORKER_CPUS") or os.cpu_count() or 1,
        memory_mb=_whole(environ, "MODELGATE_WORKER_MEMORY_MB") or _memory_mb(),
        labels=parse_labels(environ.get("MODELGATE_WORKER_LABELS", "")),
        cost_per_hour=cost_per_hour,
        source=source,
    )
