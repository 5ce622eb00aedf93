"""Rules for the catalog's "data" causes (data and labels): one module per cause id."""
