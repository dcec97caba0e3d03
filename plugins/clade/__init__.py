"""clade: class-adaptive normalization (CLADE, and CLADE-ICPE) of Tan et al., TPAMI 2021, in the SPADE generator."""
