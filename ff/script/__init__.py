"""The function library: loading it, calling it, and one typed wrapper per function.

The wrappers are the only Python code that knows each function's KEYS/ARGV order.
"""

from ff.script.library import LIBRARY_NAME, LIBRARY_VERSION, FunctionLibrary, library_source

__all__ = ["LIBRARY_NAME", "LIBRARY_VERSION", "FunctionLibrary", "library_source"]
