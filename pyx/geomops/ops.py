"""Public, framework-free facade of the point-cloud ops.

Every function validates its inputs (shapes, dtypes, index ranges, row splits), makes them
C-contiguous, picks the backend and calls the compiled kernel with the GIL released.
Function names, argument names and order follow Open3D's ops; the convolutions' defaults are
those of ``open3d.ml.tf.ops`` (``align_corners=True``; ``open3d.ml.torch.ops`` defaults to False)
and ``fixed_radius_search`` takes one ``hash_table`` argument instead of Open3D's three arrays.
docs/cconv.md and docs/search.md list every difference; :mod:`geomops.torch` has the exact
``open3d.ml.torch`` signatures.
"""

from typing import TYPE_CHECKING

from .cconv import *  # noqa: F401,F403
from .cconv import __all__ as _cconv_all
from .search import *  # noqa: F401,F403
from .search import __all__ as _search_all

if not TYPE_CHECKING:  # mypy reads only literal __all__ lists; without one it exports the star imports
    __all__ = list(_cconv_all) + list(_search_all)
