"""The igor node daemon: runs many agents per process and keeps its own Lease."""
