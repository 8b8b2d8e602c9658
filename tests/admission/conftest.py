from tests.engine.conftest import server

__all__ = ["server"]
