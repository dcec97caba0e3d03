"""coco-stuff: COCO-Stuff 2017 (train2017/val2017 photos, stuffthingmaps labels, COCO instance maps), as SPADE."""
