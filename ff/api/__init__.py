"""The areas of the `Server` API, one module each.

`ff.server.Server` is assembled from these classes; each area reads the server's shared
parts (`ServerParts`) and adds its methods. A new area of the API lands in a module of
its own here, not in ff/server.py.
"""
