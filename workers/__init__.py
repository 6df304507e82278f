"""Task code, one module per queue. Tasks stay thin and call csgoflip_jobs services."""
