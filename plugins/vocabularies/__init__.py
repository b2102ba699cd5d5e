"""Registers the vocabulary files shipped in `vocabularies/`."""

from deltav2a.api.hookspecs import hookimpl


@hookimpl
def register_vocabularies(register):
    from deltav2a_vocabularies import DIRECTORY

    for path in sorted(DIRECTORY.glob("*.yaml")):
        register(path)
