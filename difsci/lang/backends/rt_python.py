"""Names the generated source uses, for the plain-Python backend."""
import math  # noqa: F401

import numpy as np  # noqa: F401

from .random import randn_py as randn, randu_py as randu  # noqa: F401

from .atomics import py_atomic_add as atomic_add, py_atomic_max as atomic_max, py_atomic_min as atomic_min  # noqa: F401

prange = range
