"""igor: run, move and replay-verify autonomous WebAssembly agents on Kubernetes."""

__version__ = "0.1.0"
