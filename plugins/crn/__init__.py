"""crn: a cascaded refinement network in the manner of Chen & Koltun, ICCV 2017 (a baseline of the SPADE paper)."""
