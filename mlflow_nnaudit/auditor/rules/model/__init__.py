"""Rules for the catalog's "model" causes: one module per cause id."""
