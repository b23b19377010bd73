"""Performance model: architecture data and the timing pass over instruction streams.

    from trnsim.timing import get_arch, load_arch, schedule, estimate_launch
    est = estimate_launch(trnsim.last_launch())      # Estimate: total_ns, timings, engine_busy_ns, mfu, ...
    print(est.report())
"""

from .arch import Arch, available_archs, get_arch, load_arch
from .model import Estimate, Timed, estimate_launch, schedule

__all__ = ["Arch", "Estimate", "Timed", "available_archs", "estimate_launch", "get_arch", "load_arch", "schedule"]
