"""The `smp` segmenter plugin: any segmentation_models_pytorch architecture and encoder, trained with
`spadekit segmenter train` and loaded from its segmenter.pt (see spec.py for the options)."""
