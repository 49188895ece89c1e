"""Large freed blocks go back to the operating system once map_large_blocks_alone() ran: glibc's default
keeps them in its heap after its threshold rose."""

import subprocess
import sys
import textwrap

import pytest

from jtoolformer.host_memory import _glibc

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from jtoolformer.host_memory import map_large_blocks_alone

    def rss_mib():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024

    if sys.argv[1] == "1":
        assert map_large_blocks_alone()
    big = np.ones(30 << 20, np.uint8)
    del big  # glibc's default threshold for a block of its own now rises to 30 MiB
    before = rss_mib()
    blocks, pins = [], []
    for _ in range(20):
        blocks.append(np.ones(8 << 20, np.uint8))  # 160 MiB in 8 MiB blocks, under that threshold
        pins.append(np.ones(1000, np.uint8))  # small blocks between them keep the heap from shrinking
    del blocks
    print(rss_mib() - before)
""")


def _retained_mib(mapped: bool) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(int(mapped))], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")
def test_freed_large_blocks_are_returned_to_the_os():
    assert _retained_mib(mapped=False) >= 16  # the default keeps them resident
    assert _retained_mib(mapped=True) <= 4
