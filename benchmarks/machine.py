"""What the benchmark scripts record of the machine they ran on (standard library only: the peer's venv imports it too)."""
import platform


def cpu_model() -> str:
    "The CPU's model name from /proc/cpuinfo (or `platform.processor()`)."
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()
