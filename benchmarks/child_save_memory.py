"""P2 child: peak extra resident memory of ONE checkpoint save, measured by the OS.

Run in a fresh process per measurement::

    python benchmarks/child_save_memory.py --method ours|lightning|torch --mb 100 --dir DIR
    python benchmarks/child_save_memory.py --method ours_async|lightning_async --mb 100 --dir DIR

The ``_async`` methods (P8m) measure a background save from its start to the end of its write:
ours (``AsyncSaver``: one snapshot in host buffers, streamed to disk) against Lightning's
``AsyncCheckpointIO`` wrapping ``TorchCheckpointIO`` (a clone of every tensor, then the whole
file serialized into memory).

The state dict (``--mb`` megabytes of float32 tensors, built without temporaries) is allocated
first. Then the kernel's peak-RSS counter (``VmHWM``) is reset through
``/proc/self/clear_refs`` and the save runs; the peak extra RSS is ``VmHWM`` after the save
minus ``VmRSS`` just before it. A background thread also samples ``VmRSS`` every 0.2 ms as a
cross-check (and as the fallback where ``clear_refs`` cannot be written). Afterwards the file is
loaded back (memory-mapped) and compared with the state dict, so a save that wrote the wrong
thing cannot pass. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        page = os.sysconf("SC_PAGE_SIZE") // 1024
        try:
            while not self.stop.is_set():
                rss = int(os.pread(fd, 200, 0).split()[1]) * page
                self.peak = max(self.peak, rss)
                time.sleep(0.0002)
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--method", choices=["ours", "lightning", "torch", "ours_async", "lightning_async"], required=True
    )
    parser.add_argument("--mb", type=float, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.method == "ours":
        from sucrose_lightning._atomic import atomic_save
        from sucrose_lightning.config import WorkspaceSettings
        from sucrose_lightning.layout import Layout

        layout = Layout(Path(args.dir), "bench", WorkspaceSettings())
        path = layout.ckpt_path(1)

        def save(obj: object) -> None:
            atomic_save(obj, path)

    elif args.method == "lightning":
        from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

        io = TorchCheckpointIO()
        path = Path(args.dir) / "lightning.ckpt"

        def save(obj: object) -> None:
            io.save_checkpoint(obj, path)

    elif args.method == "ours_async":
        from sucrose_lightning._async import AsyncSaver
        from sucrose_lightning.config import WorkspaceSettings
        from sucrose_lightning.layout import Layout
        from sucrose_lightning.store import CheckpointStore

        layout = Layout(Path(args.dir), "bench", WorkspaceSettings())
        path = layout.ckpt_path(1)
        saver = AsyncSaver(CheckpointStore(layout))

        def save(obj: object) -> None:
            saver.save(obj, path)
            saver.wait()

    elif args.method == "lightning_async":
        from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
        from lightning.pytorch.plugins.io import AsyncCheckpointIO

        path = Path(args.dir) / "lightning.ckpt"

        def save(obj: object) -> None:
            io = AsyncCheckpointIO(TorchCheckpointIO())
            io.save_checkpoint(obj, path)
            io.teardown()  # joins the background write

    else:
        path = Path(args.dir) / "torch.pt"

        def save(obj: object) -> None:
            with open(path, "wb") as f:
                torch.save(obj, f)

    # The state dict: 64 tensors filled in place (no temporary copies), like a model's weights.
    total = int(args.mb * 2**20) // 4
    n = 64
    state = {}
    for i in range(n):
        t = torch.empty(total // n, dtype=torch.float32)
        t.fill_(float(i))
        t[::4099] = i + 0.5
        state[f"layer{i}.weight"] = t
    obj = {"state_dict": state, "epoch": 1, "global_step": 100}
    nbytes = sum(t.numel() * t.element_size() for t in state.values())

    save({"warmup": torch.zeros(4)})  # import-time work of the save path, not counted
    os.unlink(path)

    sampler = Sampler()
    sampler.start()
    time.sleep(0.01)
    rss_before = _status_kib("VmRSS")
    sampler.peak = rss_before
    hwm_ok = _reset_peak()
    t0 = time.perf_counter()
    save(obj)
    seconds = time.perf_counter() - t0
    hwm_after = _status_kib("VmHWM")
    time.sleep(0.005)
    sampler.stop.set()
    sampler.join()

    extra_hwm = (hwm_after - rss_before) * 1024 if hwm_ok else None
    extra_sampled = (sampler.peak - rss_before) * 1024
    extra = extra_hwm if extra_hwm is not None else extra_sampled

    # Same, correct work: the file holds exactly the state dict.
    back = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    same = (
        back.keys() == obj.keys()
        and back["epoch"] == 1
        and back["global_step"] == 100
        and back["state_dict"].keys() == state.keys()
        and all(torch.equal(back["state_dict"][k], v) for k, v in state.items())
    )
    size = os.path.getsize(path)
    del back
    os.unlink(path)
    leftovers = sorted(os.listdir(args.dir))
    print(
        json.dumps(
            {
                "method": args.method,
                "nbytes": nbytes,
                "file_size": size,
                "extra_bytes": extra,
                "extra_bytes_hwm": extra_hwm,
                "extra_bytes_sampled": extra_sampled,
                "rss_before": rss_before * 1024,
                "seconds": seconds,
                "same": bool(same),
                "leftovers": leftovers,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
