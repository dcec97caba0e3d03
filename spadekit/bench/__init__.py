"""Benchmarks of generated images: segmentation scores (mIoU, pixel accuracy) now; FID/KID and the bench
report later."""
