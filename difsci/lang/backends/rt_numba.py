"""Names the generated source uses, for the numba CPU backend."""
import math  # noqa: F401

import numpy as np  # noqa: F401
from numba import get_num_threads, njit, prange  # noqa: F401

from .atomics import atomic_add, atomic_max, atomic_min  # noqa: F401
from .random import make_numba

randu, randn = make_numba()
