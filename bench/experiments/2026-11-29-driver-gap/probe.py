"""Where the driver's figure exceeds the allocator's own (bench/RESULTS.md, eighth session): device memory
in use (cudaMemGetInfo) and the allocator's reserved bytes after each first use of a CUDA library, one
allocator per process. Usage: PYTORCH_ALLOC_CONF=... python3 probe.py native|expandable|async|stash"""
import sys

import torch

name = sys.argv[1]
if name == "stash":
    import stash.torch

    stash.torch.enable()


def used_mib():
    free, total = torch.cuda.mem_get_info(0)
    return (total - free) >> 20


def reserved_mib():
    if name == "stash":
        return stash.torch.memory_stats(0)["reserved_bytes.all.current"] >> 20
    return torch.cuda.memory_reserved(0) >> 20


def show(step):
    torch.cuda.synchronize()
    used, reserved = used_mib(), reserved_mib()
    print(f"{name:10s} {step:28s} used {used:6d} MiB  reserved {reserved:6d} MiB  used - reserved {used - reserved:6d} MiB")


torch.zeros(1, device="cuda")
show("context + one tensor")
a = torch.randn(4096, 4096, device="cuda")
show("64 MiB tensor")
b = a @ a
show("matmul (cuBLAS)")
layer = torch.nn.Linear(4096, 4096).cuda()
y = torch.nn.functional.gelu(layer(a))
show("linear + gelu (cuBLASLt)")
y.sum().backward()
show("backward")
side = torch.cuda.Stream()
with torch.cuda.stream(side):
    c = torch.empty(4096, 4096, device="cuda").copy_(torch.randn(4096, 4096).pin_memory(), non_blocking=True)
torch.cuda.current_stream().wait_stream(side)
c.record_stream(torch.cuda.current_stream())
show("side stream + pinned copy")
del a, b, y, c
torch.cuda.empty_cache() if name != "stash" else stash.torch.empty_cache()
show("freed, cache emptied")
