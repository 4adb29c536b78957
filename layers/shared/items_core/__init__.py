"""Code every function shares: the item model, the table's row layout and the realtime message contract.

Shipped as the SharedLayer (layers/shared/Makefile) to /opt/python, so each
function imports it as ``items_core``; tests and `make run` find the same
folder on their import path.
"""
