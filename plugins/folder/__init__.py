"""folder and flickr: your own photos, with label maps (index or colour-coded) or auto-labelled by a segmenter."""
