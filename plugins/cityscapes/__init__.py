"""cityscapes: the Cityscapes fine annotations (leftImg8bit + gtFine), as the official SPADE trains on them."""
