"""One transfer: image pair + clip -> StyleLabel -> EffectPlan -> rendered A' (TransferModel,
TransferResult), and the view the web pages read."""
