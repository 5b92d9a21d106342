"""Training: entropy tables now; predictor and restoration networks later."""
