"""BlockCNN: a convolutional block predictor with exact integer inference.

The network sees a 24x24 window of 3x3 blocks around the block to predict.
Only the top-left, top, top-right and left blocks are decoded when the block is
coded; the rest is masked.  Chroma networks also read the co-located, already
decoded luma (and Cr the decoded Cb): cross-component prediction.

    input  [C_in, 24, 24]   pixels - 128, masks, quality feature, guides
    stem   conv 4x4 /2  -> [W/2, 12, 12]   conv - BN - leaky ReLU
           conv 3x3 /2  -> [W, 6, 6]       conv - BN - leaky ReLU
    body   depth x residual block (conv - BN - lReLU - conv - BN, + skip, lReLU)
    head   fully connected [W*36] -> 64 pixels

This module is what the codec runs, with numpy and the C core only (no
torch): ``IntegerNet`` evaluates the exported integer network with integer
arithmetic in the C core (cext/intnet.c), so no float takes part in the
coding loop.  Every accumulator is also bounded by
sum|w| * 128 + |bias| < 2**24, checked when the weights are loaded, so a
float32 convolution computes it exactly in any summation order.

The float training model (``BlockCNN``: batch norm, then folded and
quantization-aware fine-tuned), its export to integers (``export_integer``)
and the PyTorch float path of the integer network (``forward_float``, the
independent second implementation the tests hold the C kernel to, bit for
bit) live in ``blockcodec/train/blockcnn_qat.py``.
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import asdict, dataclass

import numpy as np

from .. import _cext, engine
from ..errors import BlockcodecError
from .base import CONTEXT, TOP, TOP_LEFT, TOP_RIGHT, LEFT, PlaneInfo, Predictor, by_plane_kind
from .classical import PlanarPredictor

_PLANAR = PlanarPredictor()   # the baseline the network corrects

NEG_SLOPE = 0.125          # leaky ReLU slope; a power of two, so exact in integers
ACT_MAX = 127              # activations are int8 (symmetric)
W_MAX = 127                # weights are int8 (symmetric, per output channel)
ACC_LIMIT = 2 ** 24        # float32 represents every integer below this exactly
MULT_BITS = 15             # requantization multipliers are < 2**MULT_BITS
MAX_SHIFT = 40
MASK_ON = 64               # value of a set mask pixel in the input
MIN_BLOCKS_PER_THREAD = 48  # waking the other core costs more than a smaller share saves

# Input channels.  Pixels are centred on 0; "planar" holds the classical
# planar prediction of the centre block (the network predicts a correction to
# it); guides are co-located decoded planes (luma for Cb and Cr, and Cb for
# Cr), fully known.
LUMA_INPUTS = ("pixels", "causal", "available", "quality", "planar")
PLANAR = LUMA_INPUTS.index("planar")
CHROMA_INPUTS = LUMA_INPUTS + ("luma", "cb", "is_cr")


@dataclass(frozen=True)
class BlockCNNConfig:
    chroma: bool = False
    width: int = 32        # channels after the stem
    depth: int = 1         # residual blocks

    @property
    def inputs(self) -> tuple[str, ...]:
        return CHROMA_INPUTS if self.chroma else LUMA_INPUTS


# --------------------------------------------------------------------------
# Network inputs (shared by training and inference, all integers)

def quality_feature(qtable: np.ndarray) -> int:
    """floor(32 * log2(mean quantizer step)) - 128, clamped to int8.

    Computed with exact integer comparisons (2**k <= sum**32) rather than a
    floating-point log, so it is the same on every machine."""
    total = int(np.asarray(qtable, dtype=np.int64).sum())
    power = total ** 32
    k = power.bit_length() - 1          # largest k with 2**k <= total**32
    return int(np.clip(k - 6 * 32 - 128, -ACT_MAX, ACT_MAX))


def _causal_pattern() -> np.ndarray:
    m = np.zeros((CONTEXT, CONTEXT), np.int16)
    m[0:8, :] = MASK_ON     # top-left, top, top-right
    m[8:16, 0:8] = MASK_ON  # left
    return m


CAUSAL = _causal_pattern()
_AVAIL_SLOTS = {TOP_LEFT: (0, 0), TOP: (0, 8), TOP_RIGHT: (0, 16), LEFT: (8, 0)}


def build_inputs(contexts: np.ndarray, avail: np.ndarray, qfeat: int,
                 guides: np.ndarray | None = None, is_cr: bool = False,
                 chroma: bool = False) -> np.ndarray:
    """int16 [n, C_in, 24, 24] network input from the predictor's arguments.
    The array is a view of channel-last memory, the C kernel's layout, so
    that the kernel reads it without a copy."""
    n = len(contexts)
    c_in = len(CHROMA_INPUTS if chroma else LUMA_INPUTS)
    x = np.zeros((n, CONTEXT, CONTEXT, c_in), np.int16).transpose(0, 3, 1, 2)
    x[:, 0] = contexts.astype(np.int16) - 128
    x[:, 1] = CAUSAL
    for slot, (r, c) in _AVAIL_SLOTS.items():
        x[:, 2, r:r + 8, c:c + 8] = (avail[:, slot] != 0)[:, None, None] * MASK_ON
    x[:, 3] = qfeat
    x[:, PLANAR, 8:16, 8:16] = _PLANAR.predict(contexts, avail, None).astype(np.int16) - 128
    if chroma:
        if guides is None:
            raise ValueError("chroma BlockCNN needs the decoded luma as a guide")
        g = len(LUMA_INPUTS)
        x[:, g] = guides[:, 0].astype(np.int16) - 128
        if is_cr:
            x[:, g + 1] = guides[:, 1].astype(np.int16) - 128
            x[:, g + 2] = MASK_ON
    return x


# --------------------------------------------------------------------------
# Integer network

def macs_per_block(config: BlockCNNConfig) -> int:
    """Multiply-adds the network spends on one block."""
    w, c_in = config.width, len(config.inputs)
    macs = 12 * 12 * (c_in * 16) * (w // 2) + 6 * 6 * (w // 2 * 9) * w
    macs += config.depth * 2 * 6 * 6 * (w * 9) * w
    return macs + w * 36 * 64


def pack_for_c(weight: np.ndarray) -> np.ndarray:
    """int8 [O, I, kh, kw] -> the C kernel's int16 layout [K/2, O8, 2]
    (cext/intnet.h): patch values k = (ky * kw + kx) * I + ci in pairs,
    output channels padded to a multiple of 8, zeros in the padding."""
    o, i, kh, kw = weight.shape
    k = kh * kw * i
    rows = np.zeros((-(-o // 8) * 8, -(-k // 2) * 2), np.int16)
    rows[:o, :k] = weight.transpose(0, 2, 3, 1).reshape(o, k)
    return np.ascontiguousarray(rows.reshape(len(rows), -1, 2).transpose(1, 0, 2))


class IntegerNet:
    """Runs exported integer tensors in the C core; the rule is in
    docs/FORMAT.md section 5.3 (and ``blockcnn_qat.export_integer``)."""

    def __init__(self, tensors: dict[str, np.ndarray], config: BlockCNNConfig):
        self.config = config
        n_layers = 3 + 2 * config.depth
        c_in = len(config.inputs)
        w = config.width
        shapes = [(w // 2, c_in, 4, 4), (w, w // 2, 3, 3)] + [(w, w, 3, 3)] * (2 * config.depth) + [(64, w, 6, 6)]
        residual = {3 + 2 * j for j in range(config.depth)}
        expected = {f"l{i}.{k}" for i in range(n_layers) for k in ("weight", "bias", "mult", "shift")}
        expected |= {f"l{i}.skip" for i in residual}
        if set(tensors) != expected:
            odd = sorted(set(tensors) ^ expected)
            raise BlockcodecError(f"BlockCNN weights do not fit {config}: unexpected or missing {odd[:4]}")
        self.layers = []
        for i in range(n_layers):
            wt, b, mult, shift = (np.asarray(tensors[f"l{i}.{k}"]) for k in ("weight", "bias", "mult", "shift"))
            skip = np.asarray(tensors[f"l{i}.skip"]) if i in residual else None
            c_out = shapes[i][0]
            if (wt.shape != shapes[i] or wt.dtype != np.int8 or b.shape != (c_out,) or b.dtype != np.int32
                    or mult.shape != (c_out,) or mult.dtype != np.int32 or shift.shape != (1,)
                    or shift.dtype != np.int32 or (skip is not None and (skip.shape != (c_out,) or skip.dtype != np.int32))):
                raise BlockcodecError(f"BlockCNN layer {i} has the wrong shape or type for {config}")
            shift = int(shift[0])
            # The exactness guarantee: every partial sum of the convolution stays
            # below 2**24 whatever the order (inputs are at most 128 in magnitude).
            bound = np.abs(wt.astype(np.int64)).reshape(len(wt), -1).sum(1) * 128 + np.abs(b.astype(np.int64))
            if bound.max() >= ACC_LIMIT:
                raise BlockcodecError(f"BlockCNN layer {i} could overflow float32 exactness ({bound.max()})")
            if (np.abs(mult.astype(np.int64)).max() >= 2 ** MULT_BITS or not 0 <= shift <= MAX_SHIFT
                    or (skip is not None and np.abs(skip.astype(np.int64)).max() >= 2 ** MULT_BITS)):
                raise BlockcodecError(f"BlockCNN layer {i} has an out-of-range requantizer")
            self.layers.append(dict(
                packed=pack_for_c(wt), weight=np.ascontiguousarray(wt),
                bias=np.ascontiguousarray(b), mult=np.ascontiguousarray(mult), shift=shift,
                skip=None if skip is None else np.ascontiguousarray(skip),
            ))
        self.strides = [(2, 1), (2, 1)] + [(1, 1)] * (2 * config.depth) + [(1, 0)]
        self.residual = residual   # layers that add their block's input (a skip)
        self._stages = {h: self._c_stages(h) for h in (True, False)}
        self._local = threading.local()

    def __call__(self, x_int: np.ndarray, head: bool = True, simd: int = -1) -> np.ndarray:
        """x_int int16 [n, C_in, 24, 24] -> uint8 [n, 64] predicted pixels
        (``head=False``: the int8 features the head reads, [n, 6 * 6 * width]).

        The C core's integer kernel runs.  ``simd`` picks its kernel as for
        the post-filter (cext/simd.h): -1, the BLOCKCODEC_SIMD environment
        variable (none | avx2) or else the best the CPU has; 0 (or False)
        the plain loops; 1 (or True) AVX2 where the CPU has it.  Every choice
        gives the same bits; ValueError for an unknown BLOCKCODEC_SIMD.
        ``blockcodec.train.blockcnn_qat.forward_float`` is the same network
        in PyTorch float convolutions."""
        return self._forward_c(np.asarray(x_int), head, simd)

    def _c_stages(self, head: bool) -> tuple:
        """The layers as the C core's stage tuples (``_cext.intnet_forward``)."""
        stages, size = [], CONTEXT
        layers = self.layers if head else self.layers[:-1]
        for i, layer in enumerate(layers):
            c_out, c_in, k, _ = layer["weight"].shape
            stride, pad = self.strides[i]
            last = i == len(self.layers) - 1
            skip_from = i - 1 if i in self.residual else -1
            stages.append((size, size, c_in, k, k, stride, pad, layer["packed"], layer["bias"], layer["mult"],
                           layer["shift"], skip_from, layer["skip"] if skip_from >= 0 else None, not last,
                           -255 if last else -ACT_MAX, 255 if last else ACT_MAX))
            size = (size + 2 * pad - k) // stride + 1
        return tuple(stages), (size, size, c_out)

    def _scratch(self, head: bool, threads: int) -> np.ndarray:
        """The C kernel's working memory, kept between calls (fresh pages cost
        more than the network on a small batch); one per Python thread."""
        key = (head, threads)
        cache = self._local.__dict__.setdefault("scratch", {})
        if key not in cache:
            cache[key] = np.empty(_cext.intnet_scratch_len(self._stages[head][0], threads), np.int16)
        return cache[key]

    def _forward_c(self, x_int: np.ndarray, head: bool, simd: int) -> np.ndarray:
        stages, out_shape = self._stages[head]
        n = len(x_int)
        a = np.ascontiguousarray(x_int.astype(np.int16, copy=False).transpose(0, 2, 3, 1))   # NHWC
        out = np.empty((n,) + out_shape, np.int16)
        # Blocks are independent: a batch is shared among as many threads as
        # the codec may use (engine.threads()), as long as each gets
        # MIN_BLOCKS_PER_THREAD.
        threads = max(1, min(engine.threads(), n // MIN_BLOCKS_PER_THREAD))
        _cext.intnet_forward(a, n, stages, threads, int(simd), out, self._scratch(head, threads))
        if not head:
            return out.reshape(n, -1).astype(np.int8)
        base = x_int[:, PLANAR, 8:16, 8:16].reshape(n, 64).astype(np.int16) + 128
        return np.clip(base + out.reshape(n, 64), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# Weights files and the predictor

def save_weights(path, luma: dict, chroma: dict, luma_cfg: BlockCNNConfig,
                 chroma_cfg: BlockCNNConfig, meta: dict) -> None:
    """A plain .npz (no pickles): integer tensors plus JSON metadata."""
    import json
    arrays = {f"luma/{k}": v for k, v in luma.items()}
    arrays.update({f"chroma/{k}": v for k, v in chroma.items()})
    info = dict(meta, luma=asdict(luma_cfg), chroma=asdict(chroma_cfg))
    arrays["meta"] = np.frombuffer(json.dumps(info, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def weights_digest(arrays: dict[str, np.ndarray]) -> bytes:
    """4-byte hash over the tensors that define the predictions (not metadata)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "meta":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + b"\0" + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.digest()[:4]


def _config(d: dict) -> BlockCNNConfig:
    """A config from weights metadata, with every field present and typed."""
    if not isinstance(d, dict) or set(d) != {"chroma", "width", "depth"}:
        raise ValueError("config needs exactly chroma, width, depth")
    if type(d["chroma"]) is not bool or type(d["width"]) is not int or type(d["depth"]) is not int:
        raise ValueError("config fields have the wrong types")
    if not (2 <= d["width"] <= 512 and d["width"] % 2 == 0 and 0 <= d["depth"] <= 16):
        raise ValueError("config width/depth out of range")
    return BlockCNNConfig(**d)


class BlockCNNPredictor(Predictor):
    """Predictor over a shipped weights file (luma and chroma networks)."""

    def __init__(self, path, name: str = "blockcnn"):
        import json
        self.name = name
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise BlockcodecError(f"cannot read BlockCNN weights {path}: {exc}") from None
        stray = [k for k in arrays if k != "meta" and not k.startswith(("luma/", "chroma/"))]
        if stray or "meta" not in arrays or arrays["meta"].dtype != np.uint8:
            raise BlockcodecError(f"BlockCNN weights {path}: unexpected arrays {stray[:3]} or missing/odd meta")
        try:
            meta = json.loads(bytes(arrays["meta"]).decode())
            self.luma_cfg, self.chroma_cfg = (_config(meta[k]) for k in ("luma", "chroma"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BlockcodecError(f"BlockCNN weights {path} have no valid metadata ({exc})") from None
        if self.luma_cfg.chroma or not self.chroma_cfg.chroma:
            raise BlockcodecError(f"BlockCNN weights {path} mix up the luma and chroma networks")
        self.meta = meta
        self.nets = {
            False: IntegerNet({k[5:]: v for k, v in arrays.items() if k.startswith("luma/")}, self.luma_cfg),
            True: IntegerNet({k[7:]: v for k, v in arrays.items() if k.startswith("chroma/")}, self.chroma_cfg),
        }
        self._hash = weights_digest(arrays)
        self._qfeat: dict[bytes, int] = {}

    def weights_hash(self) -> bytes:
        return self._hash

    @property
    def guides(self) -> bool:
        return True

    def _inputs(self, contexts, avail, plane: PlaneInfo, guides=None):
        key = np.asarray(plane.qtable).tobytes()
        qfeat = self._qfeat.get(key)
        if qfeat is None:      # an exact big-integer power: worth computing once per table
            qfeat = self._qfeat[key] = quality_feature(plane.qtable)
        return build_inputs(contexts, avail, qfeat, guides,
                            is_cr=plane.index == 2, chroma=plane.chroma)

    def predict(self, contexts, avail, plane: PlaneInfo, guides=None):
        return self.nets[plane.chroma](self._inputs(contexts, avail, plane, guides)).reshape(-1, 8, 8)

    def predict_many(self, parts):
        """Batches that share a network (Cb and Cr) go through it as one:
        its cost is mostly per call, and batching never changes the bits."""
        return by_plane_kind(parts, self._run_joined)

    def _run_joined(self, chroma: bool, parts) -> list[np.ndarray]:
        xs = [self._inputs(*part) for part in parts]
        # Joined along the batch in the channel-last layout build_inputs made.
        x = xs[0] if len(xs) == 1 else np.concatenate([v.transpose(0, 2, 3, 1) for v in xs]).transpose(0, 3, 1, 2)
        pred = self.nets[chroma](x).reshape(-1, 8, 8)
        return np.split(pred, np.cumsum([len(x) for x in xs])[:-1])

    def macs_per_block(self, chroma: bool) -> int:
        return macs_per_block(self.chroma_cfg if chroma else self.luma_cfg)
