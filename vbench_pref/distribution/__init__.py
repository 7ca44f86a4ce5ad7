"""Feature networks of the distribution metrics (FID, KID, FVD): published layouts, exact preprocessing."""
