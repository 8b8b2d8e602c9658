"""Pure building blocks of ff: ids, partitions, keys, states, policies, errors.

Nothing here performs I/O or imports from the rest of ff.
"""
