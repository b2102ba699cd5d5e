"""Rendering an audio effect chain: `ChainSettings` (settings.py, the one type for a chain's
effects and raw values, with the `--effect` spec strings and JSON forms) -> `AudioChain`
(chain.py: Pedalboard plus outside-Pedalboard steps) -> A'."""
