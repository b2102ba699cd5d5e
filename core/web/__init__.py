"""The local web demo (`deltav2a serve`): a transfer page and the notes' listening study.

FastAPI + uvicorn serving a few static HTML/JS files (docs/decisions.md 13.1). Nothing here is
imported by `deltav2a --help`: the CLI imports this package inside the command.
"""
