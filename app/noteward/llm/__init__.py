"""Local model runtime, prompts, grounding and summaries.

llama.cpp's CPU backend uses OpenMP; with the default (active) wait policy its threads
spin at every barrier, and when the machine is busy with other work (a clinic PC, or a
shared 2-core build box) that spinning made generation ten times slower (0.7 vs 18 tokens/s
measured with 2 threads under load). Passive waiting costs nothing measurable when the
machine is idle. It must be set before libgomp is loaded, hence here; a value the user set
is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
