"""PyTorch's reference for the GPU kit (gpu-bench.sh runs it; kit/README.md).

The same models as src/ml/models.ts (MLP 784-128-10; CNN conv 32 and 64 3x3 relu + maxpool 2x2,
then dense 128 relu and 10), the same training step as the kit's bench (forward, backward, the gradient read
back to the host as RingTrain's allreduce needs it, then an SGD update), the same fp32 matmuls
(TF32 off), and the CNN trained on Fashion-MNIST to 0.91 test accuracy on one GPU.

    python3 torch_ref.py <out.json>     (RINGTRAIN_KIT_QUICK=1: a few steps of each;
                                         RINGTRAIN_KIT_DATA: the folder of the IDX .gz files)

Where torch is missing it writes {"available": false, "reason": ...} and exits 0.
"""

import gzip
import json
import os
import statistics
import sys
import time

OUT = sys.argv[1] if len(sys.argv) > 1 else "torch.json"
QUICK = os.environ.get("RINGTRAIN_KIT_QUICK") == "1"
DATA = os.environ.get("RINGTRAIN_KIT_DATA", "")
TARGET = 0.91


def write(obj):
    with open(OUT, "w") as f:
        json.dump(obj, f, indent=2)


try:
    import torch
    from torch import nn
except Exception as e:  # noqa: BLE001 - any import failure means no reference
    write({"available": False, "reason": f"import torch failed: {e}"})
    print(f"torch: not available ({e}); the report goes on without the reference")
    sys.exit(0)

cuda = torch.cuda.is_available()
dev = torch.device("cuda" if cuda else "cpu")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(1)
result = {
    "available": True,
    "torch": torch.__version__,
    "cuda": cuda,
    "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    "tf32": False,
    "note": "msPerStep includes the gradient's copy to the host (as RingTrain's step); msPerStepDeviceOnly does not",
    "steps": {},
    "matmul": {},
}
if not cuda:
    result["warning"] = "no CUDA device: the reference ran on the CPU"


def sync():
    if cuda:
        torch.cuda.synchronize()


def mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10),
    )


MODELS = {"mlp": mlp, "cnn": cnn}


def shape_for(name, batch):
    return (batch, 784) if name == "mlp" else (batch, 1, 28, 28)


def time_steps(name, batch, readback, warmup, steps, cap_s):
    model = MODELS[name]().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(shape_for(name, batch), device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        if readback:
            torch.cat([p.grad.reshape(-1) for p in model.parameters()]).cpu()
        opt.step()
        sync()
        return (time.perf_counter() - t0) * 1000

    started = time.perf_counter()
    times = []
    for i in range(warmup + steps):
        if i > 0 and time.perf_counter() - started > cap_s:
            break
        t = step()
        if i >= warmup:
            times.append(t)
    return round(statistics.median(times), 3) if times else None


def matmul(n, warmup, reps, k):
    a = torch.rand(n, n, device=dev) * 2 - 1
    b = torch.rand(n, n, device=dev) * 2 - 1

    def rep():
        t0 = time.perf_counter()
        c = None
        for _ in range(k):
            c = a @ b
        c[0, 0].item()  # the same readback of one element as the kit's tfjs bench
        return (time.perf_counter() - t0) * 1000 / k

    for _ in range(warmup):
        rep()
    ms = statistics.median(rep() for _ in range(reps))
    return {"msPerMatmul": round(ms, 3), "gflops": round(2 * n**3 / (ms * 1e6), 1), "matmulsPerRep": k, "reps": reps}


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def ring_reference(cap_s):
    """The CNN on one GPU with the ring run's global batch and optimizer (batch 512, Adam 0.003)."""
    files = {k: os.path.join(DATA, f"{k}-ubyte.gz") for k in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    if not all(os.path.exists(f) for f in files.values()):
        return {"skipped": f"no Fashion-MNIST under {DATA!r}"}
    xtr = (idx(files["train-images-idx3"]).float() / 255).reshape(-1, 1, 28, 28).to(dev)
    ytr = idx(files["train-labels-idx1"]).long().to(dev)
    xte = (idx(files["t10k-images-idx3"]).float() / 255).reshape(-1, 1, 28, 28).to(dev)
    yte = idx(files["t10k-labels-idx1"]).long().to(dev)
    torch.manual_seed(5)
    model = cnn().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    loss_fn = nn.CrossEntropyLoss()
    batch, every = (64, 2) if QUICK else (512, 50)
    g = torch.Generator(device="cpu").manual_seed(5)
    perm = torch.randperm(len(xtr), generator=g).to(dev)
    t0 = time.perf_counter()
    best, reached, evals = 0.0, None, []
    max_steps = 4 if QUICK else 100_000
    for step in range(1, max_steps + 1):
        off = ((step - 1) * batch) % (len(xtr) - batch)
        if off < batch and step > 1:
            perm = torch.randperm(len(xtr), generator=g).to(dev)
        ids = perm[off: off + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xtr[ids]), ytr[ids]).backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                acc = (model(xte).argmax(1) == yte).float().mean().item()
            s = time.perf_counter() - t0
            evals.append({"step": step, "accuracy": round(acc, 4), "s": round(s, 2)})
            best = max(best, acc)
            if acc >= TARGET:
                reached = s
                break
        if time.perf_counter() - t0 > cap_s:
            break
    return {"target": TARGET, "batch": batch, "reachedTarget": reached is not None,
            "timeToTargetS": round(reached, 2) if reached is not None else None,
            "bestAccuracy": round(best, 4), "steps": step, "evals": evals[-20:]}


warmup, steps, cap = (1, 3, 5) if QUICK else (5, 30, 4)
for name in MODELS:
    result["steps"][name] = {}
    for batch in (128, 1024):
        result["steps"][name][str(batch)] = {
            "msPerStep": time_steps(name, batch, True, warmup, steps, cap),
            "msPerStepDeviceOnly": time_steps(name, batch, False, warmup, steps, cap),
        }
        print(f"torch {name} batch {batch}: {result['steps'][name][str(batch)]}")
        write(result)
for n in ([256, 512] if QUICK else [1024, 2048, 4096]):
    result["matmul"][str(n)] = matmul(n, 1 if QUICK else 2, 2 if QUICK else 5, 8 if n <= 1024 and not QUICK else 2)
    print(f"torch matmul {n}: {result['matmul'][str(n)]}")
    write(result)
result["ring"] = ring_reference(20 if QUICK else 30)
print(f"torch CNN to {TARGET}: {result['ring']}")
write(result)
