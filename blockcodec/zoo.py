"""The model zoo: every trained weights file shipped in the package.

One entry per file, with the sha256 of its bytes (checked on load, so a
modified file is refused rather than silently decoding differently), the
command that trained it and the data it saw.  The bitstream records the
short weights hash of the model it was coded with.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BlockcodecError


@dataclass(frozen=True)
class ModelCard:
    name: str
    kind: str            # "predictor", "postfilter" or "integer program" (of the postfilter it names)
    file: str            # inside blockcodec/data/
    sha256: str          # of the file's bytes
    command: str         # how it was trained
    data: str            # what it was trained on
    notes: str = ""


# What every restoration network saw (blockcodec/train/restoration.py).
RESTORATION_DATA = ("../shared/data/train luma (603 training images; every 10th of the 671 held out for "
                    "validation): 64x64 patches, half JPEG-coded by Pillow at a random quality 5..60 (IJG "
                    "tables), half from each image's blockcodec (BlockCNN) decode at one random quality 5..95; "
                    "quality-conditioned on log2 of the mean quantizer step; one thread on the 2-core CPU")

MODELS: dict[str, ModelCard] = {
    card.name: card for card in [
        ModelCard(
            name="blockcnn",
            kind="predictor",
            file="blockcnn.npz",
            sha256="2d605a445a5273088e705f673f0a6e88c31a1d4a8d6bba9894b85ad3ed70c28a",
            command="blockcodec train predictor --minutes 40 --workdir runs/predictor "
                    "--output runs/predictor/blockcnn.npz",
            data="../shared/data/train (671 images, 92.7 MP; every 10th image held out for "
                 "validation), each coded by blockcodec-planar at 3 random qualities in 5..95",
            notes="luma: width 24, depth 1; chroma (reads decoded luma and Cb): width 24, depth 1; "
                  "predicts a correction to the planar prediction; Laplace-rate loss (sum |DCT "
                  "residual| / q); Adam 1e-3, weight decay 1e-4; first 60% float with batch norm, "
                  "then BN folded and int8 quantization-aware fine-tuning (Adam 2e-4); 31020 steps of "
                  "256 luma + 256 chroma blocks, about 30 min on the 2-core CPU; the shipped file was "
                  "exported from the last checkpoint by the same command with --resume --steps 31020 "
                  "--output blockcodec/data/blockcnn.npz",
        ),
        ModelCard(
            name="blockcnn-cl",
            kind="predictor",
            file="blockcnn-cl.npz",
            sha256="86c196b7599b7d3a1b05990a9622fc67433d57b37899f217462e4309a1af4b67",
            command="python -m blockcodec.train.predictor --steps 40000 --context-predictor blockcnn "
                    "--workdir runs/predictor-cl --output runs/predictor-cl/blockcnn.npz",
            data="../shared/data/train (671 images, 92.7 MP; every 10th image held out for "
                 "validation), each coded by the default blockcodec (BlockCNN predictor 'blockcnn', "
                 "effort 2) at 3 random qualities in 5..95: closed loop, the contexts it sees in use",
            notes="same architecture, loss and schedule as 'blockcnn' (luma and chroma width 24, depth 1; "
                  "first 60% float with batch norm, then BN folded and int8 QAT); 40000 steps of 256 luma + "
                  "256 chroma blocks, about 2.5 h on the 2-core CPU under load",
        ),
        ModelCard(
            name="blockcnn-ar",
            kind="postfilter",
            file="restore_blockcnn-ar.npz",
            sha256="438d405d62f1eca7c8a99fcb209eb8bd6328acb7467eca76fba1fb55f5027a72",
            command='blockcodec train restoration --arch blockcnn-ar --steps 6000',
            data=RESTORATION_DATA,
            notes='BlockCNN artifact removal (Maleki et al. 2018), small: width 32, depth 2, 24x24 window '
                  '-> 8x8 centre',
        ),
        ModelCard(
            name="arcnn",
            kind="postfilter",
            file="restore_arcnn.npz",
            sha256="4c28d85026cdb4497b0c4339b64f22a60bd6d0b0d55cecde6491d3f386980655",
            command='blockcodec train restoration --arch arcnn --workdir runs/restoration-arcnn-easy '
                    '--steps 2000 --codec-fraction 0 --jpeg-qualities 30,60 --grad-clip 0.1, then '
                    'blockcodec train restoration --arch arcnn --steps 6000 --init-from runs/restoration-'
                    'arcnn-easy/arcnn.npz --grad-clip 0.1',
            data=RESTORATION_DATA,
            notes='AR-CNN (Dong et al. 2015), small: 9x9x32, 7x7x16, 1x1x16, 5x5; easy-to-hard transfer '
                  'from a model trained on JPEG q30-60 only',
        ),
        ModelCard(
            name="hourglass",
            kind="postfilter",
            file="restore_hourglass.npz",
            sha256="f30bea6f96c4741465df92689989e535d458a1cd55d430c556638ea8af0817a3",
            command='blockcodec train restoration --arch hourglass --steps 2400 --lr 5e-4 --grad-clip 0.5',
            data=RESTORATION_DATA,
            notes='stacked hourglasses with multi-context channel attention (Li, Liang, Wang 2019), small:'
                  ' 16 channels, 4 stacks, 3 levels; progressive supervision toward the same patch at '
                  'q+10/+20/+30',
        ),
        ModelCard(
            name="reshuffle",
            kind="postfilter",
            file="restore_reshuffle.npz",
            sha256="5b23adf43eea0c6797b0857377e50172a68653bbcb44f42bd6057f79e151e0a5",
            command='blockcodec train restoration --arch reshuffle --batch 32 --steps 28000 --lr 7e-4 '
                    '--grad-clip 0.1 (L1, the paper loss) to step 5878; then --resume --loss l2 to step '
                    '8400; then --resume --steps 16000 --loss l2: MSE learned about twice as fast in a '
                    '300-step test',
            data=RESTORATION_DATA,
            notes='multi-scale reshuffling network (Tang and Luo 2018), small: width 32, growth 16, 4 '
                  'dense layers per scale, 3 scales',
        ),
        ModelCard(
            name="wdsr",
            kind="postfilter",
            file="restore_wdsr.npz",
            sha256="3d8244f0d977a2211071b57bc7cabc66ceb786bee2dec6f65e70396343eb4302",
            command='blockcodec train restoration --arch wdsr --steps 7000; then the same with --resume '
                    '--steps 10000, then --resume --steps 14000 (L1, batch 16; the cosine schedule restarts '
                    'lower at each extension); then a fine-tune from those weights: blockcodec train '
                    'restoration --arch wdsr --init-from restore_wdsr.npz (those weights, sha256 '
                    '35a3e8c6...) --loss l2 --lr 2e-4 --batch 32 --steps 4000 --studio-fraction 0.5 --workdir runs/ft-wdsr-mix (one thread, resumed '
                    'with --resume at step 405 on two threads)',
            data=RESTORATION_DATA + "; in the fine-tune, half of the JPEG patches cut from studio-range "
                                    "BT.601 luma (16..235)",
            notes='WDSR (Yu, Fan et al. 2018), small: width 16, expansion 4, 4 blocks; L1 (the paper loss) '
                  'for 14000 steps, then MSE for 4000 (LIVE1 q10 28.981 -> 29.039 dB; about 80 min of the '
                  'fine-tune on the 2-core CPU)',
        ),
        ModelCard(
            name="wdsr-int8",
            kind="integer program",
            file="restore_wdsr.int8.npz",
            sha256="55498c537132d11cd18bdb9fc99941fbe4938e0750726d3ad5d79b44459995cb",
            command="blockcodec train int8 --output blockcodec/data/restore_wdsr.int8.npz --force (about 2 min; "
                    "reproduces the shipped file byte for byte)",
            data="activation statistics from 48 training images (../shared/data/train, training split), centre "
                 "384x384, coded by blockcodec 4:2:0 at qualities 5..95; the Y, Cb and Cr planes",
            notes="the wdsr weights above, post-training quantized (blockcodec/train/postfilter_export.py): int8 "
                  "weights, uint8 activations, an int16 residual stream; the program the decoder's C runtime "
                  "runs (blockcodec/convnet8.py, cext/convnet8.c)",
        ),
    ]
}


def path(name: str) -> Path:
    """The verified path of a shipped weights file."""
    card = MODELS.get(name)
    if card is None:
        raise BlockcodecError(f"no shipped model named {name!r}")
    p = Path(str(resources.files("blockcodec") / "data" / card.file))
    try:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError as exc:
        raise BlockcodecError(f"shipped model {name!r} is missing ({p}): {exc.strerror}") from None
    if card.sha256 and digest != card.sha256:
        raise BlockcodecError(f"shipped model {name!r} ({p}) does not match its registered sha256")
    return p
