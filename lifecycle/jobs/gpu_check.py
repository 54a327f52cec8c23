"""Proves a GPU host is ready for ModelGate jobs: ``python -m lifecycle.jobs.gpu_check``.

1. The worker's NVML inventory matches ``nvidia-smi``.
2. A job asking for 1 GPU, launched by the runner, gets ``CUDA_VISIBLE_DEVICES`` and
   trains a small torch model on that GPU.
3. A data-parallel job through torchrun with the NCCL backend all-reduces on the GPU.

Uses only the pure job modules (no Django, no database), so it runs on a bare GPU host
with torch installed. Prints a JSON report and exits non-zero when a check fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from lifecycle.jobs import inventory, runner
from lifecycle.jobs.spec import parse_spec

TRAIN_ON_GPU = """
import json, os, time
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
device = torch.device("cuda")
torch.manual_seed(0)
x = torch.randn(4096, 64, device=device)
true_w = torch.randn(64, 1, device=device)
y = x @ true_w + 0.01 * torch.randn(4096, 1, device=device)
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1)).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = torch.nn.MSELoss()
first = loss_fn(model(x), y).item()
start = time.time()
for step in range(300):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    if step % 30 == 0:
        print(f"MODELGATE_PROGRESS {step / 300}", flush=True)
torch.cuda.synchronize()
print("CUDA_VISIBLE_DEVICES=" + os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
json.dump({
    "cuda_visible_devices": os.environ["CUDA_VISIBLE_DEVICES"],
    "device_count": torch.cuda.device_count(),
    "device_name": torch.cuda.get_device_name(0),
    "loss_first": first,
    "loss_last": loss.item(),
    "train_seconds": round(time.time() - start, 3),
}, open(os.environ["MODELGATE_RESULT_PATH"], "w"))
"""

NCCL_ALL_REDUCE = """
import json, os
import torch
import torch.distributed as dist
dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
value = torch.full((1024,), float(rank + 1), device="cuda")
dist.all_reduce(value)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 1).cuda())
loss = model(torch.randn(8, 16, device="cuda")).sum()
loss.backward()
print(f"rank {rank}/{world} on {torch.cuda.get_device_name()} all-reduced {value[0].item()}", flush=True)
if rank == 0:
    json.dump({"backend": dist.get_backend(), "world_size": world, "sum": value[0].item(),
               "nccl_version": ".".join(map(str, torch.cuda.nccl.version()))},
              open(os.environ["MODELGATE_RESULT_PATH"], "w"))
dist.destroy_process_group()
"""


def _launch(job_id: int, spec: dict, script: str, workdir: Path) -> dict:
    path = workdir / f"job{job_id}.py"
    path.write_text(script)
    spec = {**spec, "entrypoint": [sys.executable, str(path)]}
    log: list[str] = []
    outcome = runner.run(
        runner.Launch(job_id=job_id, attempt=1, spec=parse_spec(spec), gpu_indices=(0,), workdir=workdir / str(job_id)),
        on_log=log.append,
        on_progress=lambda _: None,
        on_tick=lambda: False,
    )
    return {"state": outcome.state, "error": outcome.error, "result": outcome.result, "log": "".join(log)[-2000:]}


def main() -> int:
    report: dict = {}
    nvml = inventory._from_nvml()
    smi = inventory._from_nvidia_smi()
    report["nvml"] = [g.__dict__ for g in nvml or ()]
    report["nvidia_smi"] = [g.__dict__ for g in smi or ()]
    report["inventory_matches"] = (
        bool(nvml)
        and [(g.index, g.name, g.uuid) for g in nvml] == [(g.index, g.name, g.uuid) for g in smi or ()]
        and all(abs(a.memory_mb - b.memory_mb) <= 1 for a, b in zip(nvml, smi or (), strict=False))
    )
    report["worker_inventory"] = inventory.detect({}).to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        report["one_gpu_job"] = _launch(1, {"resources": {"gpus": 1}}, TRAIN_ON_GPU, workdir)
        report["torchrun_nccl_job"] = _launch(
            2,
            {"resources": {"gpus": 1}, "parallelism": {"mode": "data", "processes_per_node": 1}},
            NCCL_ALL_REDUCE,
            workdir,
        )
    one = report["one_gpu_job"]
    ok = (
        report["inventory_matches"]
        and one["state"] == "succeeded"
        and one["result"].get("cuda_visible_devices") == "0"
        and one["result"].get("loss_last", 1e9) < one["result"].get("loss_first", 0)
        and report["torchrun_nccl_job"]["state"] == "succeeded"
        and report["torchrun_nccl_job"]["result"].get("backend") == "nccl"
    )
    report["ok"] = ok
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
