"""Distribution metrics: features of a set of videos compared with a reference set (FVD, FID, KID)."""
