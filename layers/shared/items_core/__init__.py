"""Code every function shares: the item model, the table's row layout and the realtime message contract.

Shipped as the SharedLayer to /opt/python and imported as ``items_core``; it may import only the
standard library, pydantic and botocore, never a function's own code.
"""
