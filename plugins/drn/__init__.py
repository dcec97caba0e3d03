"""The `drn` segmenter plugin: fyu/drn DRN-D-105 on Cityscapes (published weights)."""
