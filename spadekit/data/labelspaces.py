"""The label spaces of the official SPADE datasets (COCO-Stuff, ADE20K, Cityscapes) as `DatasetFacts`.

Each builder reproduces the official generator's input channels exactly, channel for channel, so that a
released checkpoint sees the same one-hot layout here as in the official code:

- COCO-Stuff (official label_nc 182, don't-care, instances): stuffthingmaps pixel value v (0..181) is
  COCO-Stuff id v + 1; 255 is "unlabeled". Here: 182 classes named by v, don't-care id 255 (the loader maps
  it to channel 182), then the instance-edge channel: 184 channels.
- ADE20K (official label_nc 150 with `contain_dontcare_label`, no instances): the official loader feeds the
  raw annotation values 0..150 (its `label - 1` is never written back), so channel c is raw value c, with
  0 = "other" and 1..150 the objectInfo150 classes, 151 channels. Here: 151 classes (0 "other", then the
  150 names), no don't-care id, no instances: the same 151 channels in the same order. (The official
  don't-care channel 150 is where 255 would go; ADE20K annotations have no 255, so it only ever holds
  class 150, "flag", exactly as here.)
- Cityscapes (official label_nc 35, no don't-care, instances): the 35 labelIds 0..34 of
  `*_gtFine_labelIds.png`, then the instance-edge channel: 36 channels.

Colours: Cityscapes uses its own table (cityscapesscripts); COCO-Stuff and ADE20K use the colours the official
visualizer draws their label maps with (`bit_colormap`). (Its `labelcolormap` also holds the Cityscapes table
and five hand-picked COCO-Stuff colours, for N = 35 and N = 182, but the visualizer asks for N = label_nc + 2,
so its result pages never show them.)
"""

from __future__ import annotations

from spadekit.data.manifest import DatasetFacts

# COCO-Stuff classes by stuffthingmaps pixel value (= COCO-Stuff id - 1): 91 thing ids, then 91 stuff ids.
# The 11 thing ids that COCO never annotated keep their placeholder names (see COCO_STUFF_UNUSED).
COCO_STUFF_CLASSES = (
    # things, values 0..90 (COCO-Stuff ids 1..91)
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "hair brush",
    # stuff, values 91..181 (COCO-Stuff ids 92..182)
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill",
    "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net",
    "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad",
    "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel",
    "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
COCO_STUFF_NUM_THINGS = 91  # values 0..90 are thing classes
# Thing values with no COCO annotations (COCO ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91).
COCO_STUFF_UNUSED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF_DONTCARE = 255

# ADE20K (SceneParsing, objectInfo150) classes 1..150, by their usual short names (the first synonym of each
# objectInfo150 entry, e.g. "windowpane;window" -> "windowpane"). Index 0 of ADE20K_CLASSES is "other".
ADE20K_CLASSES = (
    "other",
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair",
    "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel",
    "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

CITYSCAPES_NUM_LABELS = 35  # official label_nc: labelIds 0..34
CITYSCAPES_TRAIN_IGNORE = 255  # trainId of the labelIds the benchmark does not score


def bit_colormap(n: int) -> list[tuple[int, int, int]]:
    """Colours of ids 0..n-1 as the official visualizer draws them for every dataset but Cityscapes: the
    PASCAL VOC colormap shifted by one (id i gets the VOC colour of i + 1, so that id 0 is not black). The
    code's bits go, lowest first, to r, g, b in turn, filling each channel from its high bit down."""
    colours = []
    for i in range(n):
        code, rgb = i + 1, [0, 0, 0]
        for shift in range(7, 0, -1):  # 7 rounds of 3 bits: codes below 2**21
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << shift
            code >>= 3
        colours.append((rgb[0], rgb[1], rgb[2]))
    return colours


def coco_stuff_facts() -> DatasetFacts:
    palette = bit_colormap(len(COCO_STUFF_CLASSES))
    things = [i for i in range(COCO_STUFF_NUM_THINGS) if i not in COCO_STUFF_UNUSED]
    return DatasetFacts(name="coco", class_names=list(COCO_STUFF_CLASSES), palette=palette,
                        dontcare_id=COCO_STUFF_DONTCARE, has_instances=True, thing_ids=things)


def ade20k_facts() -> DatasetFacts:
    return DatasetFacts(name="ade20k", class_names=list(ADE20K_CLASSES), palette=bit_colormap(len(ADE20K_CLASSES)),
                        dontcare_id=None, has_instances=False)


def cityscapes_facts() -> DatasetFacts:
    """The 35 labelIds with names, colours and instance classes from `cityscapesscripts.helpers.labels`."""
    from cityscapesscripts.helpers.labels import labels

    by_id = {label.id: label for label in labels}
    # labelIds run 0..33 in that table ('license plate' has id -1); the official label_nc 35 leaves id 34
    # without an entry, so it is named id_34 and drawn black (it never occurs in *_gtFine_labelIds.png).
    names = [by_id[i].name if i in by_id else f"id_{i}" for i in range(CITYSCAPES_NUM_LABELS)]
    palette = [tuple(by_id[i].color) if i in by_id else (0, 0, 0) for i in range(CITYSCAPES_NUM_LABELS)]
    things = [i for i in range(CITYSCAPES_NUM_LABELS) if i in by_id and by_id[i].hasInstances]
    return DatasetFacts(name="cityscapes", class_names=names, palette=palette, dontcare_id=None,
                        has_instances=True, thing_ids=things)


def cityscapes_trainid_facts() -> DatasetFacts:
    """The 19 training classes (trainIds 0..18), named and coloured by `cityscapesscripts.helpers.labels`,
    don't-care 255: the label space of segmenters trained on Cityscapes."""
    from cityscapesscripts.helpers.labels import trainId2label

    ids = sorted(i for i in trainId2label if 0 <= i < CITYSCAPES_TRAIN_IGNORE)
    return DatasetFacts(
        name="cityscapes",
        class_names=[trainId2label[i].name for i in ids],
        palette=[tuple(trainId2label[i].color) for i in ids],
        dontcare_id=CITYSCAPES_TRAIN_IGNORE,
        has_instances=True,
        thing_ids=[i for i in ids if trainId2label[i].hasInstances],
    )


def ade20k_150_facts() -> DatasetFacts:
    """ADE20K's 150 classes without "other": the label space of segmenters trained on ADE20K (class c is
    annotation value c + 1)."""
    facts = ade20k_facts()
    return facts.model_copy(update={"class_names": facts.class_names[1:], "palette": facts.palette[1:]})
