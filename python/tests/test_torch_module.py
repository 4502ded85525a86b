"""stash.torch's own logic without torch or a GPU: a stand-in `torch` module records what enable() asks
of PyTorch, so the order of checks, the errors, the fallback and the stats names are tested in CI.
(On the GPU machine python/tests/gpu/smoke_torch.py runs the same paths against the real torch.)"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

FAKE_TORCH = textwrap.dedent(
    """
    # A stand-in for the parts of torch that stash.torch touches.
    import os
    __version__ = "0.0-fake"
    calls = []

    class device:
        def __init__(self, spec, index=None):
            if isinstance(spec, device):
                self.type, self.index = spec.type, spec.index
                return
            self.type, _, i = str(spec).partition(":")
            self.index = int(i) if i else index

    class _Cuda:
        initialized = os.environ.get("FAKE_TORCH_INITIALIZED") == "1"
        def is_initialized(self):
            return self.initialized
        def current_device(self):
            return 0

    class _Memory:
        class CUDAPluggableAllocator:
            def __init__(self, path, alloc, free):
                calls.append(("pluggable", os.path.basename(path), alloc, free))
        def change_current_allocator(self, allocator):
            if os.environ.get("FAKE_TORCH_REFUSE") == "1":
                raise RuntimeError("Can't swap an already initialized allocator")
            calls.append(("change_current_allocator",))

    cuda = _Cuda()
    cuda.memory = _Memory()
    """
)

FAKE_CPP_EXTENSION = textwrap.dedent(
    """
    import os, torch
    class _Hooks:  # the extension as built: install() wires the allocator
        def install(self, path):
            torch.calls.append(("hooks.install", os.path.basename(path)))
    def load(**kwargs):
        if os.environ.get("FAKE_HOOKS_BUILD") == "1":
            return _Hooks()
        raise OSError("no compiler here (stand-in)")
    """
)


class TorchModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        root = os.path.join(cls.dir.name, "torch")
        os.makedirs(os.path.join(root, "utils"))
        with open(os.path.join(root, "__init__.py"), "w") as f:
            f.write(FAKE_TORCH)
        with open(os.path.join(root, "utils", "__init__.py"), "w") as f:
            f.write("")
        with open(os.path.join(root, "utils", "cpp_extension.py"), "w") as f:
            f.write(FAKE_CPP_EXTENSION)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def run_child(self, code, **env_extra):
        env = dict(os.environ)
        env.pop("STASH_CONF", None)
        env["PYTHONPATH"] = self.dir.name + os.pathsep + env.get("PYTHONPATH", "")
        env["XDG_CACHE_HOME"] = self.dir.name
        env.update(env_extra)
        result = subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(code)], env=env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"child failed:\n{result.stdout}\n{result.stderr}")
        return result

    def test_enable_falls_back_with_a_warning_when_the_extension_cannot_be_built(self):
        result = self.run_child(
            """
            import torch, stash, stash.torch
            opts = stash.torch.enable(page_slack=0.5)
            assert "page_slack:0.5" in opts and "free_records_used_streams:on" in opts, opts
            assert "fill_mapped_above" not in opts and "small_fill_mapped" not in opts, opts  # the defaults' fill
            assert "peer_access:none" not in opts, opts  # nothing would ask for a grant without the hooks
            assert stash.torch.enabled() and not stash.torch.hooks_wired()
            assert torch.calls == [("pluggable", "libstash_c.so", "stash_alloc", "stash_free"),
                                   ("change_current_allocator",)], torch.calls
            assert stash.torch.enable(page_slack=0.5) == opts   # the same again: nothing happens
            assert len(torch.calls) == 2
            try:
                stash.torch.enable(page_slack=0.1)
            except stash.TooLateError as e:
                assert "other options" in str(e), str(e)
            else:
                raise AssertionError("different options accepted")
            """
        )
        self.assertIn("could not build the PyTorch hooks extension", result.stderr)
        self.assertIn("no compiler here", result.stderr)

    def test_with_the_hooks_peers_are_granted_when_pytorch_asks(self):
        self.run_child(
            """
            import torch, stash, stash.torch
            opts = stash.torch.enable()
            assert stash.torch.hooks_wired(), torch.calls
            assert torch.calls == [("hooks.install", "libstash_c.so")], torch.calls
            assert ",peer_access:none" in opts and "fill_mapped" not in opts, opts
            assert stash.current_options() == opts
            """,
            FAKE_HOOKS_BUILD="1",
        )
        # The user's choice (keyword or STASH_CONF) still wins over stash.torch's default.
        self.run_child(
            """
            import stash, stash.torch
            opts = stash.torch.enable(peer_access="all")
            assert stash.torch.hooks_wired() and "peer_access:none" not in opts, opts
            """,
            FAKE_HOOKS_BUILD="1",
        )
        self.run_child(
            """
            import stash, stash.torch
            opts = stash.torch.enable()
            assert stash.torch.hooks_wired() and "peer_access:none" not in opts, opts
            """,
            FAKE_HOOKS_BUILD="1",
            STASH_CONF="peer_access:all",
        )

    def test_enable_after_cuda_started_is_too_late_and_changes_nothing(self):
        self.run_child(
            """
            import torch, stash, stash.torch
            try:
                stash.torch.enable()
            except stash.TooLateError as e:
                assert "before any CUDA tensor exists" in str(e) and "set_device" in str(e), str(e)
            else:
                raise AssertionError("accepted")
            assert torch.calls == [] and not stash.torch.enabled()
            """,
            FAKE_TORCH_INITIALIZED="1",
        )

    def test_pytorch_refusing_the_swap_is_too_late(self):
        self.run_child(
            """
            import torch, stash, stash.torch
            try:
                stash.torch.enable()
            except stash.TooLateError as e:
                assert "already initialized" in str(e), str(e)
            else:
                raise AssertionError("accepted")
            assert not stash.torch.enabled()
            """,
            FAKE_TORCH_REFUSE="1",
        )

    def test_a_bad_option_is_refused_before_pytorch_is_touched(self):
        self.run_child(
            """
            import torch, stash, stash.torch
            for kwargs, name in ((dict(page_slak=1), "page_slak"), (dict(limit="lots"), "limit")):
                try:
                    stash.torch.enable(**kwargs)
                except stash.OptionError as e:
                    assert name in str(e), str(e)
                else:
                    raise AssertionError(f"{kwargs} accepted")
            assert torch.calls == [] and not stash.torch.enabled()
            """
        )

    def test_memory_stats_use_pytorch_names(self):
        self.run_child(
            """
            import torch, stash, stash.torch
            from stash import _native as n
            stash.torch.enable()
            if stash.backing() != "host":
                raise SystemExit(0)
            L = n.lib()
            p = L.stash_alloc(3000, 0, None)
            q = L.stash_alloc(5000, 0, None)
            L.stash_free(q, 5000, 0, None)
            s = stash.torch.memory_stats(0)
            raw = stash.get_stats(0)
            assert s["allocated_bytes.all.current"] == raw["allocated_bytes"] >= 3000, s
            assert s["allocated_bytes.all.peak"] == raw["peak_allocated_bytes"] >= 8000, s
            assert s["reserved_bytes.all.current"] == raw["reserved_bytes"] > 0, s
            assert s["reserved_bytes.all.peak"] == raw["peak_reserved_bytes"], s
            assert s["requested_bytes.all.current"] == 3000 and s["requested_bytes.all.peak"] == 8000, s
            assert s["allocation.all.current"] == 1 and s["allocation.all.allocated"] == 2, s
            assert s["num_alloc_retries"] == 0 and s["num_ooms"] == 0, s
            assert s["stash.cache_hits"] == raw["cache_hits"]
            assert L.stash_alloc(1 << 61, 0, None) is None
            s = stash.torch.memory_stats(torch.device("cuda:0"))
            assert s["num_ooms"] == 1 and s["num_alloc_retries"] >= 1, s
            assert stash.torch.memory_allocated() == s["allocated_bytes.all.current"]
            assert stash.torch.max_memory_reserved(0) == s["reserved_bytes.all.peak"]
            L.stash_free(p, 3000, 0, None)
            stash.torch.empty_cache()
            assert stash.torch.memory_reserved(0) == 0
            stash.torch.reset_peak_memory_stats(0)
            assert stash.torch.max_memory_allocated(0) == 0
            """
        )


if __name__ == "__main__":
    unittest.main()
