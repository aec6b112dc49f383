# PyInstaller runtime hook: runs first in the bundled process, before Noteward is imported.
#
# 1. The CPU baseline. llama.cpp in this bundle is built for x86-64-v3 (AVX, AVX2, FMA, F16C,
#    BMI2; see installer/build_llama_wheel.sh). On an older CPU it would die of SIGILL at the
#    first summary; say so at start instead, with what is missing.
# 2. Where the bundle's resources/ and models/ are: beside _internal/, set as the documented
#    NOTEWARD_RESOURCES / NOTEWARD_MODELS unless IT has set them.
import os
import sys

_NEEDED = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2")


def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


_flags = _cpu_flags()
if _flags is not None:
    _missing = [f for f in _NEEDED if f not in _flags]
    if _missing:
        sys.stderr.write(
            "noteward: this computer's processor lacks " + ", ".join(_missing) + ", which this "
            "build of Noteward needs (x86-64-v3: Intel Haswell 2013 / AMD Zen or newer). "
            "Nothing was started; ask IT for a build for older processors.\n"
        )
        sys.exit(2)

_root = os.path.dirname(getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(sys.executable))))
os.environ.setdefault("NOTEWARD_RESOURCES", os.path.join(_root, "resources"))
os.environ.setdefault("NOTEWARD_MODELS", os.path.join(_root, "models"))
