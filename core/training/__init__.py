"""Controller training: losses, balanced sampling, the trainer.

The trainer works on `ControllerData` (`model/data.py`), plain numpy arrays aligned with a
`ParamLayout`, so it does not care where records come from (database shards, a synthetic toy
problem in the tests). torch is only imported by the submodules that need it.
"""
