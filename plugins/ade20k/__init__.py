"""ade20k and ade20k-outdoor: ADE20K scene parsing (ADEChallengeData2016), as the official SPADE trains on it."""
