"""Indicators (shares of a population, against baselines) and experiments on them."""
