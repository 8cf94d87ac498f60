"""Wire-faithful vendor stand-ins ("sandboxes") that Stratum's adapters and tests talk to.

Each vendor lives in its own subpackage and is a self-contained ASGI app; `sandboxes.faults` holds the
fault-injection machinery they all share.
"""
