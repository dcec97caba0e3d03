"""The label space of a folder dataset that brings its own label maps: class names, colours, don't-care id.

Class names come from the palette file (--set palette=PATH; format in palette_file), or the class-name file
(--set classes=PATH, else SRC/classes.txt when it exists: one name per line, line i names class id i), or
--set num_classes=N (classes named class_0 .. class_{N-1}). Workers convert samples in parallel, so the label
space is fixed before any label is read: with none of the three, prepare stops and asks for one; when several
are given they must agree. Colours come from the palette file, else the official SPADE visualizer's colour map
(`bit_colormap`). The `dontcare` id must lie outside the class ids (e.g. 255).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spadekit.plugin import SpadekitError, bit_colormap
from spadekit_plugins.folder.palette_file import Palette, read_palette
from spadekit_plugins.folder.spec import FolderOptions

CLASS_FILE = "classes.txt"
CLASS_FILE_FORMAT = "one class name per line, line i = class id i"


@dataclass(frozen=True)
class FolderClasses:
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    dontcare_id: int | None
    colour_palette: Palette | None  # reads colour-coded label PNGs, when a palette file was given


def label_space(options: FolderOptions, src: Path) -> FolderClasses:
    palette = read_palette(options.palette) if options.palette else None
    class_file = options.classes or (src / CLASS_FILE if (src / CLASS_FILE).is_file() else None)
    names = _class_names(palette, class_file, options.num_classes, src)
    _check_dontcare(options.dontcare, names, palette)
    colours = palette.colours if palette else bit_colormap(len(names))
    return FolderClasses(names, colours, options.dontcare, palette)


def read_class_names(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"Class-name file {path} does not exist; fix --set classes=PATH ({CLASS_FILE_FORMAT}).")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names:
        raise SpadekitError(f"Class-name file {path} is empty; write {CLASS_FILE_FORMAT}.")
    if "" in names:
        line = names.index("") + 1
        raise SpadekitError(
            f"Line {line} of {path} is blank, but line i names class id i - 1; name that class or remove the line."
        )
    return names


def _class_names(palette: Palette | None, class_file: Path | None, num_classes: int | None, src: Path) -> list[str]:
    file_names = read_class_names(class_file) if class_file else None
    if palette and file_names is not None and file_names != palette.names:
        difference = _first_difference(file_names, palette.names)
        raise SpadekitError(
            f"{class_file} and palette {palette.path} list different classes ({difference}); "
            "make them list the same classes in the same order, or give only one."
        )
    names = palette.names if palette else file_names
    if names is None:
        if num_classes is None:
            raise SpadekitError(
                f"The label space of {src} is unknown: write the class names to {src / CLASS_FILE} "
                f"({CLASS_FILE_FORMAT}), or pass --set classes=PATH, --set palette=PATH or --set num_classes=N."
            )
        return [f"class_{i}" for i in range(num_classes)]
    if num_classes is not None and num_classes != len(names):
        origin = palette.path if palette else class_file
        raise SpadekitError(
            f"num_classes={num_classes}, but {origin} lists {len(names)} classes; drop num_classes or fix the file."
        )
    return names


def _first_difference(names: list[str], others: list[str]) -> str:
    for i, (a, b) in enumerate(zip(names, others, strict=False)):
        if a != b:
            return f"class id {i} is {a!r} in one and {b!r} in the other"
    return f"{len(names)} and {len(others)} classes"


def _check_dontcare(dontcare: int | None, names: list[str], palette: Palette | None) -> None:
    if dontcare is not None and dontcare < len(names):
        raise SpadekitError(
            f"dontcare={dontcare} is class id {dontcare} ({names[dontcare]!r}); choose an id outside "
            f"0..{len(names) - 1}, e.g. --set dontcare=255."
        )
    if dontcare is None and palette and palette.dontcare_colour is not None:
        raise SpadekitError(
            f"Palette {palette.path} gives a `dontcare` colour; say which id those pixels get with "
            "--set dontcare=ID (outside the class ids, e.g. 255)."
        )
