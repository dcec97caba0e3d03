"""`spadekit bench`: generate a split with a run's generator and score it (segmentation scores, FID/KID), with
the protocol beside the numbers; see `runner` (the order of work), `protocol`, `report`."""
