"""Rules for the catalog's "optimisation" causes: one module per cause id."""
