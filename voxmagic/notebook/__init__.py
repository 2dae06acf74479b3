"""What only notebooks need: the magics (parse a line into typed options), the commands that run
them, the live views, and the lookup of names in the user's namespace.

The core never imports this package (a test checks the import graph): everything here is a thin
layer over :mod:`voxmagic.api`'s building blocks, so all of it also works from plain Python.
"""
