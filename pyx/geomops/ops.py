"""Public, framework-free facade of the point-cloud ops.

Every function validates its inputs (shapes, dtypes, index ranges, row splits), makes them
C-contiguous, picks the backend and calls the compiled kernel with the GIL released.
Argument names, order and defaults follow Open3D's ops so that switching is an import change.
"""

from typing import TYPE_CHECKING

from .cconv import *  # noqa: F401,F403
from .cconv import __all__ as _cconv_all
from .search import *  # noqa: F401,F403
from .search import __all__ as _search_all

if not TYPE_CHECKING:  # mypy reads only literal __all__ lists; without one it exports the star imports
    __all__ = list(_cconv_all) + list(_search_all)
