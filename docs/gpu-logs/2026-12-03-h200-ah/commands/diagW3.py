# Run W3's diagnostic: the steps of smoke_torch's graph_intermediate check, printing what each one saw.
# Command (run W3, carry .devbuild/w1): python3 -m pip install -q --no-index --no-deps --no-compile
#   --no-cache-dir --upgrade --target /tmp/site .devbuild/w1/stash*.whl; STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext
#   PYTHONPATH=/tmp/site timeout 120 python3 docs/gpu-logs/2026-12-03-h200-ah/commands/diagW3.py | tee $OUT/diagW3.txt
import ctypes, torch, stash, stash.torch
from stash import _native as nat
stash.torch.enable()
L = nat.lib()
def live(pool):
    out = (nat.PoolBlock * 16)(); count = ctypes.c_size_t(0)
    st = L.stash_graph_pool_live_blocks(0, pool.id[0], pool.id[1], out, 16, ctypes.byref(count))
    return st, [hex(out[i].ptr or 0) for i in range(count.value)]
pool = torch.cuda.MemPool()
print("pool id", pool.id)
capture, side = torch.cuda.Stream(), torch.cuda.Stream()
n = 4 << 20
static = torch.ones(n, device="cuda")
g = torch.cuda.CUDAGraph()
with torch.cuda.graph(g, pool=pool.id, stream=capture, capture_error_mode="relaxed"):
    tmp = static * 2
    ptr = tmp.data_ptr()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)
        tmp.fill_(7)
    tmp.record_stream(side)
    out = tmp + 1
    print("in capture, live:", live(pool), "tmp", hex(ptr), "out", hex(out.data_ptr()))
    del tmp
    print("in capture after del, live:", live(pool))
print("after capture: side running", not side.query(), "live:", live(pool), "err:", nat.last_error())
with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
    b = torch.empty(n, device="cuda")
print("b", hex(b.data_ptr()), "== tmp", b.data_ptr() == ptr, "side running", not side.query())
side.synchronize()
with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
    c = torch.empty(n, device="cuda")
print("c", hex(c.data_ptr()), "== tmp", c.data_ptr() == ptr, "live:", live(pool))
with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
    d = torch.empty(n, device="cuda")
print("d", hex(d.data_ptr()), "== tmp", d.data_ptr() == ptr)
torch.cuda.empty_cache()
with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
    e = torch.empty(n, device="cuda")
print("after empty_cache e", hex(e.data_ptr()), "== tmp", e.data_ptr() == ptr)
