"""The `oasis` generator plugin's options and spec; light to import (no torch).

OASIS trains with its own method (`PluginSpec.method`): a U-Net segmentation discriminator with N+1 outputs
("fake" and the N semantic classes) and class-balanced cross-entropy losses, LabelMix on the discriminator
(see `spadekit_plugins.oasis.objective`); no feature matching, VGG or KL term by default (`default_loss`).

Label layout. The plugin consumes spadekit's semantics (`spadekit.nn.semantics`: the one-hot classes, then the
don't-care channel, then the instance-edge channel, as the LabelSpace has them). OASIS's own layout puts its
don't-care class at index 0 (`contain_dontcare_label`): ADE20K's 0 "other" and Cityscapes' labelId 0
"unlabeled" are already there in spadekit's layout, COCO-Stuff's "unlabeled" (255) is spadekit's channel 182
and OASIS's 0, its classes 0..181 OASIS's 1..182. `dontcare_class` says which of our one-hot channels OASIS's
losses ignore; `OasisOptions.oasis_order` is the one mapping between the layouts, "the don't-care class first,
then the others in our order", used by LabelMix (whose draws follow OASIS's class order) and by
`spadekit import oasis` (which permutes the label channels of released weights). OASIS uses no instance
maps; the recipes set `data.use_instance = false`, and with instance edges the generator takes the edge channel
as one more conditioning channel while the losses read the one-hot channels only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from spadekit.plugin import ParamFreeNorm, PluginSpec, SpadekitError

if TYPE_CHECKING:
    from spadekit.plugin import LabelSpace

# Base widths of the generator's feature maps from the first block to the last, in units of ngf (reference
# `channels = [16*ch, 16*ch, 16*ch, 8*ch, 4*ch, 2*ch, 1*ch]`); num_res_blocks takes the last num_res_blocks + 1.
G_WIDTHS = (16, 16, 16, 8, 4, 2, 1)
# The discriminator's encoder widths (reference `[3, 128, 128, 256, 256, 512, 512]`), in units of channels_D
# after the 3 image channels; its decoder ends at channels_D (reference: 64).
D_WIDTHS = (2, 2, 4, 4, 8, 8)
MAX_RES_BLOCKS = len(D_WIDTHS)


class OasisOptions(BaseModel):
    """OASIS's generator and training options (reference config.py; defaults are the reference's).

    The reference's flags map as: --channels_G -> ngf, --z_dim -> z_dim, --no_3dnoise -> noise_3d = false,
    --spade_ks -> kernel_size, --param_free_norm syncbatch|batch|instance -> norm sync_batch|batch|instance,
    --no_spectral_norm -> spectral = false, --num_res_blocks, --channels_D, --lambda_labelmix,
    --no_labelmix -> labelmix = false, --no_balancing_inloss -> class_balancing = false, and the 51 batches of
    update_EMA's statistics pass -> ema_stat_batches. --add_vgg_loss with --lambda_vgg is the recipe's
    `loss.lambda_vgg` (> 0 adds it), and the adversarial loss is weighted by `loss.lambda_gan` (1, the reference's
    implicit weight). The EMA decay, learning rates and betas are the recipe's [train] ema_decay and [optim]
    section."""

    model_config = ConfigDict(extra="forbid")

    # [loss] defaults beneath the recipe's: OASIS has only its adversarial loss (and optionally VGG)
    default_loss: ClassVar[dict[str, Any]] = {"lambda_feat": 0.0, "lambda_vgg": 0.0, "lambda_kld": 0.0}

    ngf: int = Field(64, gt=0, description="reference --channels_G: the first block has 16*ngf channels")
    z_dim: int = Field(64, gt=0, description="size of the 3D noise concatenated to the label map")
    noise_3d: bool = Field(True, description="concatenate z_dim noise channels to the label map (false: "
                           "reference --no_3dnoise, one image per label map)")
    num_res_blocks: int = Field(6, ge=2, le=MAX_RES_BLOCKS, description="residual blocks of G and of each half of "
                                "D; G starts at crop_size / 2^(num_res_blocks-1) (the reference builds only 6)")
    kernel_size: Literal[1, 3, 5] = Field(3, description="reference --spade_ks: kernel of SPADE's convs")
    hidden: int = Field(128, gt=0, description="width of SPADE's shared conv (fixed 128 in the reference)")
    norm: ParamFreeNorm = Field("sync_batch", description="reference --param_free_norm: the norm SPADE modulates")
    spectral: bool = Field(True, description="spectral norm on G's residual convs and all of D's but the last")
    channels_D: int = Field(64, gt=0, description="D's width: encoder 2c, 2c, 4c, 4c, 8c, 8c, decoder down to c "
                            "(the reference declares channels_D but hard-codes these widths at its default 64)")
    labelmix: bool = Field(True, description="LabelMix consistency regularization of D (reference not --no_labelmix)")
    lambda_labelmix: float = Field(10.0, ge=0, description="LabelMix weight (reference: 10, Cityscapes 5)")
    ema_stat_batches: int = Field(51, ge=0, description="training batches the EMA generator runs in train mode "
                                  "(no gradients) before samples and checkpoints, so that its batch-norm statistics "
                                  "are its own (reference update_EMA: 51); 0: only the averaged statistics")
    class_balancing: bool = Field(True, description="weight the cross-entropy of each class by its inverse "
                                  "frequency in the batch (reference not --no_balancing_inloss)")
    dontcare_class: int | Literal["dataset", "none"] = Field(
        "dataset",
        description="the one-hot channel OASIS's losses ignore (weight 0, its class 0): 'dataset' = the shards' "
        "don't-care channel if they have one, 'none', or a class id (ADE20K 'other' and Cityscapes 'unlabeled': 0)",
    )

    def dontcare_channel(self, space: LabelSpace) -> int | None:
        """Which of our one-hot channels is OASIS's don't-care class (None: none)."""
        if self.dontcare_class == "none":
            return None
        if self.dontcare_class == "dataset":
            return space.label_nc if space.dontcare else None
        if not 0 <= self.dontcare_class < space.one_hot_nc:
            raise SpadekitError(
                f"model.dontcare_class = {self.dontcare_class} is not a class of this dataset (ids 0.."
                f"{space.one_hot_nc - 1}); give a class id, 'dataset' or 'none'."
            )
        return self.dontcare_class

    def oasis_order(self, space: LabelSpace) -> list[int]:
        """OASIS's class order in our channels: entry i is our one-hot channel of OASIS's class i (the don't-care
        class first, then the others in our order). ADE20K and Cityscapes (dontcare_class 0): the identity;
        COCO-Stuff: [182, 0, 1, ..., 181]."""
        dontcare = self.dontcare_channel(space)
        others = [c for c in range(space.one_hot_nc) if c != dontcare]
        return others if dontcare is None else [dontcare, *others]


def build(options: OasisOptions, context):
    from spadekit_plugins.oasis.generator import OASISGenerator

    return OASISGenerator(options, context)


def method(options: OasisOptions, context, recipe):
    from spadekit_plugins.oasis.objective import OasisMethod

    return OasisMethod(options, context, recipe)


spec = PluginSpec(
    kind="generators",
    name="oasis",
    summary="OASIS (Sushko et al. 2021): SPADE blocks with 3D noise, a U-Net segmentation D, N+1-class losses.",
    options=OasisOptions,
    factory=build,
    method=method,
)
