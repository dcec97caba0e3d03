"""`spadekit demo`: the whole pipeline on toyscapes (`pipeline`) and its report (`report`)."""
