/*
 * blockcodec's C core: the Python bindings.
 *
 * This file parses and checks arguments and calls the algorithms, which live
 * in files of their own with no Python in them:
 *   adapt.c    the entropy coder's adaptive frequency rows;
 *   contexts.c its AC magnitude contexts (Pass B);
 *   dct.c      integer 8x8 forward DCT + dead-zone quantization, and
 *              dequantization + inverse DCT + reconstruction (normative);
 *   planar.c   the planar predictor;
 *   blocks.c   block gather/scatter and causal contexts;
 *   rdoq.c     rate-distortion optimized quantization (encoder only);
 *   intnet.c   BlockCNN's integer network; requant.c, its requantization of
 *              float accumulators (the training's float reference path);
 *   convnet8.c the post-filter's integer network; simd.c, kernel selection.
 * Shared geometry (DCTSIZE, CONTEXT, ...) is in geometry.h.
 *
 * Every buffer's type, size and every index and value range an algorithm
 * relies on is checked here before the call; callers pass preallocated
 * buffers, and nothing here allocates.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "adapt.h"
#include "blocks.h"
#include "contexts.h"
#include "convnet8.h"
#include "dct.h"
#include "geometry.h"
#include "intnet.h"
#include "planar.h"
#include "rdoq.h"
#include "requant.h"
#include "simd.h"

/* ------------------------------------------------------- argument checking */

/* A checked view of one array argument.  `format` is the struct code the
 * buffer must have ('B', 'h', 'H', 'i'); `count` the exact element count, or
 * -1 to accept any (the caller checks it). */
typedef struct {
    Py_buffer view;
    int held;
} Arg;

static int get_arg(PyObject *obj, Arg *arg, const char *name, char format,
                   Py_ssize_t itemsize, Py_ssize_t count, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    arg->held = 0;
    if (PyObject_GetBuffer(obj, &arg->view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s buffer", name,
                     writable ? " writable" : "");
        return -1;
    }
    arg->held = 1;
    const char *f = arg->view.format ? arg->view.format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    /* 'l' is int32 or int64, as long is 32 or 64 bits; accept either spelling. */
    int format_ok = (f[0] == format && f[1] == '\0') ||
                    (format == 'i' && f[0] == 'l' && f[1] == '\0' && sizeof(long) == 4) ||
                    (format == 'q' && f[0] == 'l' && f[1] == '\0' && sizeof(long) == 8);
    if (!format_ok || arg->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: wrong element type '%s' (expected '%c', %zd bytes)",
                     name, f, format, itemsize);
        return -1;
    }
    Py_ssize_t n = arg->view.len / itemsize;
    if (count >= 0 && n != count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd elements, got %zd", name, count, n);
        return -1;
    }
    return 0;
}

static int check_steps(const uint16_t *qt)
{
    for (int k = 0; k < DCTSIZE2; k++) {
        if (qt[k] == 0) {
            PyErr_SetString(PyExc_ValueError, "qtable: steps must be >= 1");
            return -1;
        }
    }
    return 0;
}

static void release(Arg *args, int n)
{
    for (int i = 0; i < n; i++)
        if (args[i].held) PyBuffer_Release(&args[i].view);
}

static Py_ssize_t elements(const Arg *a) { return a->view.len / a->view.itemsize; }

/* Residual pixels must lie in -PIXEL_MAX..PIXEL_MAX (dct.h's bit budget). */
static int check_residual(const int16_t *res, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (res[i] < -PIXEL_MAX || res[i] > PIXEL_MAX) {
            PyErr_SetString(PyExc_ValueError, "residual: values must lie in -255..255");
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ entry points */

PyDoc_STRVAR(fdct_quantize_doc,
"fdct_quantize(residual, qtable, rounding, out)\n\n"
"Forward DCT and dead-zone quantization of n residual blocks.\n"
"residual: int16[n*64] pixels in -255..255; qtable: uint16[64] steps >= 1;\n"
"rounding: uint16[64] rounding offsets in 1/256 of a step (128 = round to nearest);\n"
"out: int16[n*64] quantized coefficients, natural order.");

static PyObject *py_fdct_quantize(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_res, *o_q, *o_r, *o_out;
    if (!PyArg_ParseTuple(args, "OOOO", &o_res, &o_q, &o_r, &o_out)) return NULL;
    Arg a[4];
    memset(a, 0, sizeof a);
    if (get_arg(o_res, &a[0], "residual", 'h', 2, -1, 0) ||
        get_arg(o_q, &a[1], "qtable", 'H', 2, DCTSIZE2, 0) ||
        get_arg(o_r, &a[2], "rounding", 'H', 2, DCTSIZE2, 0)) goto fail;
    Py_ssize_t total = elements(&a[0]);
    if (total % DCTSIZE2) { PyErr_SetString(PyExc_ValueError, "residual: length not a multiple of 64"); goto fail; }
    if (get_arg(o_out, &a[3], "out", 'h', 2, total, 1)) goto fail;
    const int16_t *res = a[0].view.buf;
    const uint16_t *qt = a[1].view.buf, *rnd = a[2].view.buf;
    int16_t *out = a[3].view.buf;
    if (check_steps(qt)) goto fail;
    for (int k = 0; k < DCTSIZE2; k++) {
        if (rnd[k] > QUANT_ONE) { PyErr_SetString(PyExc_ValueError, "rounding: offsets must be <= 256"); goto fail; }
    }
    if (check_residual(res, total)) goto fail;
    Py_BEGIN_ALLOW_THREADS
    dct_fdct_quantize(res, total / DCTSIZE2, qt, rnd, out);
    Py_END_ALLOW_THREADS
    release(a, 4);
    Py_RETURN_NONE;
fail:
    release(a, 4);
    return NULL;
}

/* ------------------------------------------------ rate-distortion quantizer */

/* The model tuple of rdo_quantize, checked: every lookup-table entry must
 * name a row of the cost table it indexes. a: RDOQ_MODEL_ARRAYS slots. */
static int parse_rdoq_model(PyObject *o_model, RdoqModel *m, Arg *a)
{
    static const char *names[RDOQ_MODEL_ARRAYS] = {"zigzag", "zz_up", "zz_left", "eob_row", "dc_row", "ac_row",
                                                   "nb4_bucket", "sign_row", "eob_cost", "dc_cost", "ac_cost",
                                                   "sign_cost", "esc_cost"};
    static const Py_ssize_t counts[RDOQ_MODEL_ARRAYS] = {DCTSIZE2, DCTSIZE2, DCTSIZE2, RDOQ_NO_NEIGHBOUR + 1, RDOQ_NO_NEIGHBOUR + 1,
                                                         RDOQ_AC_LUT_LEN, RDOQ_NB4_MAX + 1, RDOQ_SIGN_LUT_LEN,
                                                         -1, -1, -1, -1, RDOQ_ESC_LENGTHS};
    PyObject *seq = PySequence_Fast(o_model, "model: expected a sequence");
    if (!seq) return -1;
    int ok = PySequence_Fast_GET_SIZE(seq) == RDOQ_MODEL_ARRAYS;
    if (!ok) PyErr_SetString(PyExc_ValueError, "model: expected 13 arrays");
    for (int i = 0; ok && i < RDOQ_MODEL_ARRAYS; i++)
        ok = get_arg(PySequence_Fast_GET_ITEM(seq, i), &a[i], names[i], 'i', 4, counts[i], 0) == 0;
    Py_DECREF(seq);
    if (!ok) return -1;
    const int32_t *v[RDOQ_MODEL_ARRAYS];
    for (int i = 0; i < RDOQ_MODEL_ARRAYS; i++) v[i] = a[i].view.buf;
    Py_ssize_t eob_rows = elements(&a[8]) / RDOQ_EOB_SYMBOLS, dc_rows = elements(&a[9]) / RDOQ_ALPHABET,
               ac_rows = elements(&a[10]) / RDOQ_ALPHABET, sign_rows = elements(&a[11]) / 2;
    if (elements(&a[8]) % RDOQ_EOB_SYMBOLS || elements(&a[9]) % RDOQ_ALPHABET || elements(&a[10]) % RDOQ_ALPHABET ||
        elements(&a[11]) % 2) {
        PyErr_SetString(PyExc_ValueError, "model: cost tables must have whole rows"); return -1;
    }
    for (int k = 0; k < DCTSIZE2; k++) {   /* natural indices, zigzag indices or DCTSIZE2 (outside the block) */
        if (v[0][k] < 0 || v[0][k] >= DCTSIZE2 || v[1][k] < 0 || v[1][k] > DCTSIZE2 || v[2][k] < 0 ||
            v[2][k] > DCTSIZE2) {
            PyErr_SetString(PyExc_ValueError, "model: scan tables out of range"); return -1;
        }
    }
    for (int i = 0; i <= RDOQ_NO_NEIGHBOUR; i++) {
        if (v[3][i] < 0 || v[3][i] >= eob_rows || v[4][i] < 0 || v[4][i] + 1 >= dc_rows) {
            PyErr_SetString(PyExc_ValueError, "model: EOB/DC row out of range"); return -1;
        }
    }
    for (Py_ssize_t i = 0; i < RDOQ_AC_LUT_LEN; i++) {
        if (v[5][i] < 0 || (int64_t)v[5][i] * RDOQ_NB4 + RDOQ_NB4 > ac_rows) {
            PyErr_SetString(PyExc_ValueError, "model: AC row out of range"); return -1;
        }
    }
    for (int i = 0; i <= RDOQ_NB4_MAX; i++) {
        if (v[6][i] < 0 || v[6][i] >= RDOQ_NB4) { PyErr_SetString(PyExc_ValueError, "model: refinement out of range"); return -1; }
    }
    for (int i = 0; i < RDOQ_SIGN_LUT_LEN; i++) {
        if (v[7][i] < 0 || v[7][i] >= sign_rows) { PyErr_SetString(PyExc_ValueError, "model: sign row out of range"); return -1; }
    }
    *m = (RdoqModel){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
    return 0;
}

PyDoc_STRVAR(rate_costs_doc,
"rate_costs(freqs, n_symbols, out)\n\n"
"Q16 bits of every entry of a frequency table: log2(row sum) - log2(entry), in integer\n"
"arithmetic (cext/rdoq.h).  freqs: uint32[rows*n_symbols], entries >= 1; out: int32, same size.");

static PyObject *py_rate_costs(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_f, *o_out;
    int n;
    if (!PyArg_ParseTuple(args, "OiO", &o_f, &n, &o_out)) return NULL;
    Arg a[2];
    memset(a, 0, sizeof a);
    if (get_arg(o_f, &a[0], "freqs", 'I', 4, -1, 0)) goto fail;
    Py_ssize_t total = elements(&a[0]);
    if (n < 1 || total % n) { PyErr_SetString(PyExc_ValueError, "n_symbols must divide the table"); goto fail; }
    if (get_arg(o_out, &a[1], "out", 'i', 4, total, 1)) goto fail;
    const uint32_t *f = a[0].view.buf;
    int32_t *out = a[1].view.buf;
    for (Py_ssize_t i = 0; i < total; i++)
        if (f[i] == 0) { PyErr_SetString(PyExc_ValueError, "freqs: entries must be >= 1"); goto fail; }
    for (Py_ssize_t row = 0; row < total / n; row++) {
        uint64_t sum = 0;
        for (int i = 0; i < n; i++) sum += f[row * n + i];
        int64_t ls = rdoq_log2_q16(sum);
        for (int i = 0; i < n; i++) out[row * n + i] = (int32_t)(ls - rdoq_log2_q16(f[row * n + i]));
    }
    release(a, 2);
    Py_RETURN_NONE;
fail:
    release(a, 2);
    return NULL;
}

PyDoc_STRVAR(rdo_quantize_doc,
"rdo_quantize(residual, qtable, rows, cols, n_cols, plane_eob, plane_dmag, plane_dc, plane_mags,\n"
"             dc_prediction, model, lam, passes, out) -> int\n\n"
"Forward DCT and rate-distortion optimized quantization (cext/rdoq.h) of n residual\n"
"blocks at block positions (rows, cols), coded in that order: each block's contexts\n"
"read the plane record (int32[n_blocks] EOB, |DC - prediction| and DC, uint8[n_blocks*64]\n"
"capped magnitudes in zigzag order, of the blocks decided so far, raster order), which\n"
"this call updates.  model: the 13 int32 arrays\n"
"of RdoqModel; lam: lambda for J = D * 2^16 + lam * R (D in squared DCT units * 64, R in\n"
"Q16 bits); passes: greedy passes (0 = round to nearest, then place the end of block).\n"
"out: int16[n*64].  Returns the model's total rate of the chosen levels in Q16 bits.");

static PyObject *py_rdo_quantize(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_res, *o_q, *o_rows, *o_cols, *o_eob, *o_dmag, *o_dc, *o_mags, *o_model, *o_out;
    Py_ssize_t n_cols;
    int dc_prediction, passes;
    long long lam;
    if (!PyArg_ParseTuple(args, "OOOOnOOOOpOLiO", &o_res, &o_q, &o_rows, &o_cols, &n_cols, &o_eob, &o_dmag,
                          &o_dc, &o_mags, &dc_prediction, &o_model, &lam, &passes, &o_out)) return NULL;
    Arg a[9 + RDOQ_MODEL_ARRAYS];
    memset(a, 0, sizeof a);
    RdoqModel model;
    int64_t total = 0;
    if (get_arg(o_res, &a[0], "residual", 'h', 2, -1, 0) ||
        get_arg(o_q, &a[1], "qtable", 'H', 2, DCTSIZE2, 0)) goto fail;
    Py_ssize_t n = elements(&a[0]) / DCTSIZE2;
    if (elements(&a[0]) % DCTSIZE2) { PyErr_SetString(PyExc_ValueError, "residual: length not a multiple of 64"); goto fail; }
    if (get_arg(o_rows, &a[2], "rows", 'i', 4, n, 0) || get_arg(o_cols, &a[3], "cols", 'i', 4, n, 0) ||
        get_arg(o_eob, &a[4], "plane_eob", 'i', 4, -1, 1)) goto fail;
    Py_ssize_t nb = elements(&a[4]);
    if (get_arg(o_dmag, &a[5], "plane_dmag", 'i', 4, nb, 1) || get_arg(o_dc, &a[6], "plane_dc", 'i', 4, nb, 1) ||
        get_arg(o_out, &a[7], "out", 'h', 2, n * DCTSIZE2, 1) ||
        get_arg(o_mags, &a[8], "plane_mags", 'B', 1, nb * DCTSIZE2, 1) ||
        parse_rdoq_model(o_model, &model, &a[9])) goto fail;
    if (n_cols < 1 || n_cols > nb || nb % n_cols || nb > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "n_cols: must divide the plane's block count"); goto fail;
    }
    if (lam < 0 || lam > RDOQ_MAX_LAMBDA || passes < 0 || passes > RDOQ_MAX_PASSES) {
        PyErr_SetString(PyExc_ValueError, "lam or passes out of range"); goto fail;
    }
    const int16_t *res = a[0].view.buf;
    const uint16_t *qt = a[1].view.buf;
    const int32_t *rows = a[2].view.buf, *cols = a[3].view.buf;
    if (check_steps(qt)) goto fail;
    if (check_residual(res, n * DCTSIZE2)) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rows[i] < 0 || cols[i] < 0 || cols[i] >= n_cols || rows[i] >= nb / n_cols) {
            PyErr_SetString(PyExc_ValueError, "rows/cols: block outside the plane"); goto fail;
        }
    }
    RdoqPlane plane = {a[4].view.buf, a[5].view.buf, a[6].view.buf, a[8].view.buf, (int)n_cols, dc_prediction};
    int16_t *out = a[7].view.buf;
    Py_BEGIN_ALLOW_THREADS
    total = rdoq_blocks(&model, &plane, res, n, rows, cols, qt, lam, passes, out);
    Py_END_ALLOW_THREADS
    release(a, 9 + RDOQ_MODEL_ARRAYS);
    return PyLong_FromLongLong(total);
fail:
    release(a, 9 + RDOQ_MODEL_ARRAYS);
    return NULL;
}

PyDoc_STRVAR(reconstruct_doc,
"reconstruct(coef, qtable, pred, out)\n\n"
"Decoder reconstruction of n blocks: clamp(pred + IDCT(coef * qtable), 0, 255).\n"
"coef: int16[n*64]; qtable: uint16[64]; pred: uint8[n*64]; out: uint8[n*64].\n"
"Exact integer arithmetic: this is the normative decoding path.");

static PyObject *py_reconstruct(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_c, *o_q, *o_p, *o_out;
    if (!PyArg_ParseTuple(args, "OOOO", &o_c, &o_q, &o_p, &o_out)) return NULL;
    Arg a[4];
    memset(a, 0, sizeof a);
    if (get_arg(o_c, &a[0], "coef", 'h', 2, -1, 0) ||
        get_arg(o_q, &a[1], "qtable", 'H', 2, DCTSIZE2, 0)) goto fail;
    Py_ssize_t total = elements(&a[0]);
    if (total % DCTSIZE2) { PyErr_SetString(PyExc_ValueError, "coef: length not a multiple of 64"); goto fail; }
    if (get_arg(o_p, &a[2], "pred", 'B', 1, total, 0) ||
        get_arg(o_out, &a[3], "out", 'B', 1, total, 1)) goto fail;
    const int16_t *coef = a[0].view.buf;
    const uint16_t *qt = a[1].view.buf;
    const uint8_t *pred = a[2].view.buf;
    uint8_t *out = a[3].view.buf;
    if (check_steps(qt)) goto fail;
    Py_BEGIN_ALLOW_THREADS
    dct_reconstruct(coef, total / DCTSIZE2, qt, pred, out);
    Py_END_ALLOW_THREADS
    release(a, 4);
    Py_RETURN_NONE;
fail:
    release(a, 4);
    return NULL;
}

PyDoc_STRVAR(dequant_idct_doc,
"dequant_idct(coef, qtable, out)\n\n"
"The residual half of reconstruct(): out = IDCT(coef * qtable), int32[n*64], unclamped.\n"
"Exposed for tests and analysis.");

static PyObject *py_dequant_idct(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_c, *o_q, *o_out;
    if (!PyArg_ParseTuple(args, "OOO", &o_c, &o_q, &o_out)) return NULL;
    Arg a[3];
    memset(a, 0, sizeof a);
    if (get_arg(o_c, &a[0], "coef", 'h', 2, -1, 0) ||
        get_arg(o_q, &a[1], "qtable", 'H', 2, DCTSIZE2, 0)) goto fail;
    Py_ssize_t total = elements(&a[0]);
    if (total % DCTSIZE2) { PyErr_SetString(PyExc_ValueError, "coef: length not a multiple of 64"); goto fail; }
    if (get_arg(o_out, &a[2], "out", 'i', 4, total, 1)) goto fail;
    const int16_t *coef = a[0].view.buf;
    const uint16_t *qt = a[1].view.buf;
    int32_t *out = a[2].view.buf;
    if (check_steps(qt)) goto fail;
    dct_dequant_idct(coef, total / DCTSIZE2, qt, out);
    release(a, 3);
    Py_RETURN_NONE;
fail:
    release(a, 3);
    return NULL;
}

/* ------------------------------------------------------------ block glue */

/* Checks a plane and a list of block positions; on success fills the
 * geometry.  Planes are padded to whole blocks by the caller. */
static int check_plane_blocks(Arg *plane, Arg *rows, Arg *cols, Py_ssize_t width,
                              Py_ssize_t height, Py_ssize_t *nblocks)
{
    if (width <= 0 || height <= 0 || width % DCTSIZE || height % DCTSIZE) {
        PyErr_SetString(PyExc_ValueError, "plane: width and height must be positive multiples of 8");
        return -1;
    }
    if (width > PY_SSIZE_T_MAX / height) {
        PyErr_SetString(PyExc_ValueError, "plane: width * height overflows");
        return -1;
    }
    if (elements(plane) != width * height) {
        PyErr_SetString(PyExc_ValueError, "plane: size does not match width * height");
        return -1;
    }
    Py_ssize_t n = elements(rows);
    if (elements(cols) != n) {
        PyErr_SetString(PyExc_ValueError, "rows and cols must have the same length");
        return -1;
    }
    const int32_t *r = rows->view.buf, *c = cols->view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (r[i] < 0 || c[i] < 0 || (Py_ssize_t)r[i] * DCTSIZE >= height || (Py_ssize_t)c[i] * DCTSIZE >= width) {
            PyErr_SetString(PyExc_IndexError, "block position outside the plane");
            return -1;
        }
    }
    *nblocks = n;
    return 0;
}

PyDoc_STRVAR(gather_blocks_doc,
"gather_blocks(plane, width, height, rows, cols, out)\n\n"
"Copy the 8x8 blocks at (rows[i], cols[i]) (block units) of a uint8 plane into out: uint8[n*64].");

static PyObject *py_gather_blocks(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_p, *o_r, *o_c, *o_out;
    Py_ssize_t width, height, n;
    if (!PyArg_ParseTuple(args, "OnnOOO", &o_p, &width, &height, &o_r, &o_c, &o_out)) return NULL;
    Arg a[4];
    memset(a, 0, sizeof a);
    if (get_arg(o_p, &a[0], "plane", 'B', 1, -1, 0) ||
        get_arg(o_r, &a[1], "rows", 'i', 4, -1, 0) ||
        get_arg(o_c, &a[2], "cols", 'i', 4, -1, 0) ||
        check_plane_blocks(&a[0], &a[1], &a[2], width, height, &n) ||
        get_arg(o_out, &a[3], "out", 'B', 1, n * DCTSIZE2, 1)) goto fail;
    blocks_gather(a[0].view.buf, width, a[1].view.buf, a[2].view.buf, n, a[3].view.buf);
    release(a, 4);
    Py_RETURN_NONE;
fail:
    release(a, 4);
    return NULL;
}

PyDoc_STRVAR(scatter_blocks_doc,
"scatter_blocks(plane, width, height, rows, cols, src)\n\n"
"Write the uint8[n*64] blocks of src into a writable uint8 plane at (rows[i], cols[i]).");

static PyObject *py_scatter_blocks(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_p, *o_r, *o_c, *o_src;
    Py_ssize_t width, height, n;
    if (!PyArg_ParseTuple(args, "OnnOOO", &o_p, &width, &height, &o_r, &o_c, &o_src)) return NULL;
    Arg a[4];
    memset(a, 0, sizeof a);
    if (get_arg(o_p, &a[0], "plane", 'B', 1, -1, 1) ||
        get_arg(o_r, &a[1], "rows", 'i', 4, -1, 0) ||
        get_arg(o_c, &a[2], "cols", 'i', 4, -1, 0) ||
        check_plane_blocks(&a[0], &a[1], &a[2], width, height, &n) ||
        get_arg(o_src, &a[3], "src", 'B', 1, n * DCTSIZE2, 0)) goto fail;
    blocks_scatter(a[0].view.buf, width, a[1].view.buf, a[2].view.buf, n, a[3].view.buf);
    release(a, 4);
    Py_RETURN_NONE;
fail:
    release(a, 4);
    return NULL;
}

PyDoc_STRVAR(gather_contexts_doc,
"gather_contexts(plane, width, height, rows, cols, fill, out, avail)\n\n"
"Causal 24x24 contexts (3x3 blocks centred on each block) for a predictor.\n"
"Only the top-left, top, top-right and left blocks carry decoded pixels; the\n"
"centre, right and the bottom row, and neighbours outside the plane, are set\n"
"to `fill`.  out: uint8[n*576]; avail: uint8[n*4], 1 where the top-left, top,\n"
"top-right, left neighbour (in that order) exists.");

static PyObject *py_gather_contexts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_p, *o_r, *o_c, *o_out, *o_av;
    Py_ssize_t width, height, n;
    int fill;
    if (!PyArg_ParseTuple(args, "OnnOOiOO", &o_p, &width, &height, &o_r, &o_c, &fill, &o_out, &o_av))
        return NULL;
    if (fill < 0 || fill > PIXEL_MAX) { PyErr_SetString(PyExc_ValueError, "fill must be in 0..255"); return NULL; }
    Arg a[5];
    memset(a, 0, sizeof a);
    if (get_arg(o_p, &a[0], "plane", 'B', 1, -1, 0) ||
        get_arg(o_r, &a[1], "rows", 'i', 4, -1, 0) ||
        get_arg(o_c, &a[2], "cols", 'i', 4, -1, 0) ||
        check_plane_blocks(&a[0], &a[1], &a[2], width, height, &n) ||
        get_arg(o_out, &a[3], "out", 'B', 1, n * CONTEXT2, 1) ||
        get_arg(o_av, &a[4], "avail", 'B', 1, n * N_NEIGHBOURS, 1)) goto fail;
    blocks_gather_contexts(a[0].view.buf, width, a[1].view.buf, a[2].view.buf, n, (uint8_t)fill, a[3].view.buf,
                           a[4].view.buf);
    release(a, 5);
    Py_RETURN_NONE;
fail:
    release(a, 5);
    return NULL;
}

/* ----------------------------------------------------- planar prediction */

PyDoc_STRVAR(planar_predict_doc,
"planar_predict(contexts, avail, fill, out)\n\n"
"The planar predictor (docs/FORMAT.md 5.2) of n blocks from their causal\n"
"contexts.  contexts: uint8[n*576] as gather_contexts writes them; avail:\n"
"uint8[n*4]; fill: the value used when no neighbour exists; out: uint8[n*64].");

static PyObject *py_planar_predict(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_ctx, *o_av, *o_out;
    int fill;
    if (!PyArg_ParseTuple(args, "OOiO", &o_ctx, &o_av, &fill, &o_out))
        return NULL;
    if (fill < 0 || fill > PIXEL_MAX) { PyErr_SetString(PyExc_ValueError, "fill must be in 0..255"); return NULL; }
    Arg a[3];
    memset(a, 0, sizeof a);
    if (get_arg(o_ctx, &a[0], "contexts", 'B', 1, -1, 0)) goto fail;
    if (elements(&a[0]) % CONTEXT2) {
        PyErr_SetString(PyExc_ValueError, "contexts: expected a multiple of 576 elements");
        goto fail;
    }
    Py_ssize_t n = elements(&a[0]) / CONTEXT2;
    if (get_arg(o_av, &a[1], "avail", 'B', 1, n * N_NEIGHBOURS, 0) ||
        get_arg(o_out, &a[2], "out", 'B', 1, n * DCTSIZE2, 1)) goto fail;
    planar_predict(a[0].view.buf, a[1].view.buf, fill, n, a[2].view.buf);
    release(a, 3);
    Py_RETURN_NONE;
fail:
    release(a, 3);
    return NULL;
}

/* ------------------------------------------------------------ network glue */

PyDoc_STRVAR(requantize_doc,
"requantize(acc, channels, hw, bias, mult, shift, skip, skip_mult, relu, offset, lo, hi, out)\n\n"
"One BlockCNN requantization step (docs/FORMAT.md, section BlockCNN).  acc is a\n"
"channels-last float32 convolution output [n, channels] (hw must be 1) that must hold exact integers below\n"
"2^24 in magnitude; per channel c: v = (acc + bias[c]) * mult[c] + skip * skip_mult[c],\n"
"y = floor(v / 2^shift + 1/2), or floor(v / 2^(shift+3) + 1/2) when relu and v < 0;\n"
"out = clamp(y + offset, lo, hi) as float32.  skip and skip_mult may be None.");

static PyObject *py_requantize(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_acc, *o_b, *o_m, *o_skip, *o_sm, *o_out;
    Py_ssize_t channels, hw;
    int shift, relu, offset, lo, hi;
    if (!PyArg_ParseTuple(args, "OnnOOiOOpiiiO", &o_acc, &channels, &hw, &o_b, &o_m, &shift,
                          &o_skip, &o_sm, &relu, &offset, &lo, &hi, &o_out)) return NULL;
    Arg a[6];
    memset(a, 0, sizeof a);
    if (channels < 1 || channels > REQUANT_MAX_CHANNELS || hw != 1) {
        PyErr_SetString(PyExc_ValueError, "channels out of range (channels-last layout: hw must be 1)"); return NULL;
    }
    if (shift < 0 || shift > INTNET_MAX_SHIFT) { PyErr_SetString(PyExc_ValueError, "shift out of range"); return NULL; }
    if (lo > hi || lo < INT16_MIN || hi > INT16_MAX || offset < INT16_MIN || offset > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "offset/lo/hi out of range"); return NULL;
    }
    int has_skip = o_skip != Py_None;
    if (has_skip == (o_sm == Py_None)) { PyErr_SetString(PyExc_ValueError, "skip and skip_mult go together"); return NULL; }
    if (get_arg(o_acc, &a[0], "acc", 'f', 4, -1, 0)) goto fail;
    Py_ssize_t total = elements(&a[0]);
    if (total % (channels * hw)) { PyErr_SetString(PyExc_ValueError, "acc: length not a multiple of channels * hw"); goto fail; }
    if (get_arg(o_b, &a[1], "bias", 'i', 4, channels, 0) ||
        get_arg(o_m, &a[2], "mult", 'i', 4, channels, 0) ||
        get_arg(o_out, &a[3], "out", 'f', 4, total, 1)) goto fail;
    if (has_skip && (get_arg(o_skip, &a[4], "skip", 'f', 4, total, 0) ||
                     get_arg(o_sm, &a[5], "skip_mult", 'i', 4, channels, 0))) goto fail;
    const float *acc = a[0].view.buf;
    const int32_t *bias = a[1].view.buf, *mult = a[2].view.buf;
    const float *skip = has_skip ? a[4].view.buf : NULL;
    const int32_t *smult = has_skip ? a[5].view.buf : NULL;
    float *out = a[3].view.buf;
    for (Py_ssize_t c = 0; c < channels; c++) {
        if (mult[c] < -INTNET_MAX_MULT || mult[c] > INTNET_MAX_MULT || bias[c] < -INTNET_MAX_BIAS ||
            bias[c] > INTNET_MAX_BIAS || (smult && (smult[c] < -INTNET_MAX_MULT || smult[c] > INTNET_MAX_MULT))) {
            PyErr_SetString(PyExc_ValueError, "bias/mult out of range"); goto fail;
        }
    }
    if (has_skip) {   /* skip values must be exact integers in int8 range */
        for (Py_ssize_t i = 0; i < total; i++)
            if (!(skip[i] >= (float)INT8_MIN && skip[i] <= (float)INT8_MAX) || skip[i] != (float)(int32_t)skip[i]) {
                PyErr_SetString(PyExc_ValueError, "skip: values must be integers in -128..127"); goto fail;
            }
    }
    int bad;
    Py_BEGIN_ALLOW_THREADS
    bad = requant_f32(acc, skip, bias, mult, smult, channels, total, shift, relu, offset, lo, hi, out);
    Py_END_ALLOW_THREADS
    if (bad) { PyErr_SetString(PyExc_ArithmeticError, "requantize: accumulator is not an exact integer below 2^24"); goto fail; }
    release(a, 6);
    Py_RETURN_NONE;
fail:
    release(a, 6);
    return NULL;
}

PyDoc_STRVAR(intnet_forward_doc,
"intnet_forward(x, n, stages, threads, simd, out, scratch)\n\n"
"The integer BlockCNN (docs/FORMAT.md, section 5.3.3) over n independent maps.\n"
"x: int16[n*h*w*cin], channels-last, values in -128..128.  stages: a sequence of\n"
"(h, w, cin, kh, kw, stride, pad, weight, bias, mult, shift, skip_from, skip_mult, relu, lo, hi)\n"
"run in order, each reading the previous one's output (the first reads x).  weight: int16,\n"
"packed [K/2][cout8][2] with K = kh*kw*cin rounded up to even and cout8 = cout rounded up to\n"
"a multiple of 8 (cext/intnet.h), values in -127..127; bias, mult: int32[cout].  A stage\n"
"with skip_from = j >= 0 adds the input of stage j (of its own output's shape) times\n"
"skip_mult (int32[cout]); otherwise skip_from is -1 and skip_mult None.  Per output:\n"
"acc = the exact convolution, v = (acc + bias) * mult + skip * skip_mult,\n"
"y = floor(v / 2^shift + 1/2) (shift + 3 for negative v when relu), clamped to lo..hi,\n"
"which must lie in -128..128 for every stage but the last.  out: int16, the last stage's\n"
"output [n][ho][wo][cout].  scratch: a writable int16 buffer of at least\n"
"intnet_scratch_len(stages, threads) elements.  Maps are shared among `threads` threads.\n"
"simd: -1 for BLOCKCODEC_SIMD or the best kernel, else a level (0 = the plain kernel,\n"
"1 = AVX2; capped at the CPU's); ValueError for an unknown BLOCKCODEC_SIMD.  Every thread\n"
"count and kernel gives the same results.");

/* One stage tuple, checked, into st; it must read maps of (h, w, cin) when
 * those are >= 0.  a: the stage's 4 buffer slots. */
static int parse_stage(PyObject *tuple, int index, int last, IntnetStage *st, Arg *a)
{
    PyObject *o_w, *o_b, *o_m, *o_sm;
    int h, w, cin, kh, kw, stride, pad, shift, skip_from, relu, lo, hi;
    if (!PyArg_ParseTuple(tuple, "iiiiiiiOOOiiOpii;stage: (h, w, cin, kh, kw, stride, pad, weight, "
                          "bias, mult, shift, skip_from, skip_mult, relu, lo, hi)", &h, &w, &cin, &kh,
                          &kw, &stride, &pad, &o_w, &o_b, &o_m, &shift, &skip_from, &o_sm, &relu, &lo, &hi))
        return -1;
    if (h < 1 || w < 1 || cin < 1 || h > INTNET_MAX_MAP || w > INTNET_MAX_MAP || kh < 1 || kw < 1 ||
        kh > INTNET_MAX_KERNEL || kw > INTNET_MAX_KERNEL || stride < 1 || stride > INTNET_MAX_KERNEL || pad < 0 ||
        pad >= INTNET_MAX_KERNEL || h + 2 * pad < kh || w + 2 * pad < kw ||
        (Py_ssize_t)kh * kw * cin > INTNET_MAX_PATCH) {
        PyErr_Format(PyExc_ValueError, "stage %d: map or kernel geometry out of range", index); return -1;
    }
    if (shift < 0 || shift > INTNET_MAX_SHIFT) { PyErr_Format(PyExc_ValueError, "stage %d: shift out of range", index); return -1; }
    /* Every activation a later stage reads stays in -INTNET_ACT_MAX..INTNET_ACT_MAX:
     * that bound, with |weight| <= INTNET_MAX_WEIGHT, keeps each accumulator inside int32. */
    if (lo > hi || lo < (last ? INT16_MIN : -INTNET_ACT_MAX) || hi > (last ? INT16_MAX : INTNET_ACT_MAX)) {
        PyErr_Format(PyExc_ValueError, "stage %d: lo/hi out of range", index); return -1;
    }
    if (skip_from < -1 || skip_from > index || (skip_from >= 0) == (o_sm == Py_None)) {
        PyErr_Format(PyExc_ValueError, "stage %d: skip_from must name an earlier input, with skip_mult", index);
        return -1;
    }
    if (get_arg(o_b, &a[0], "bias", 'i', 4, -1, 0)) return -1;
    Py_ssize_t cout = elements(&a[0]);
    if (cout < 1 || cout > INTNET_MAX_COUT) { PyErr_Format(PyExc_ValueError, "stage %d: channel count out of range", index); return -1; }
    *st = (IntnetStage){{h, w, cin, kh, kw, stride, pad, (int)cout, shift, relu, lo, hi}, NULL, NULL, NULL, NULL, skip_from};
    if (get_arg(o_w, &a[1], "weight", 'h', 2, (Py_ssize_t)intnet_patch_len(&st->layer) * intnet_cout_padded(&st->layer), 0) ||
        get_arg(o_m, &a[2], "mult", 'i', 4, cout, 0) ||
        (skip_from >= 0 && get_arg(o_sm, &a[3], "skip_mult", 'i', 4, cout, 0))) return -1;
    const int16_t *wt = a[1].view.buf;
    for (Py_ssize_t i = 0; i < elements(&a[1]); i++)
        if (wt[i] < -INTNET_MAX_WEIGHT || wt[i] > INTNET_MAX_WEIGHT) { PyErr_Format(PyExc_ValueError, "stage %d: weights must be in -127..127", index); return -1; }
    const int32_t *bias = a[0].view.buf, *mult = a[2].view.buf, *smult = skip_from >= 0 ? a[3].view.buf : NULL;
    for (Py_ssize_t c = 0; c < cout; c++)
        if (bias[c] < -INTNET_MAX_BIAS || bias[c] > INTNET_MAX_BIAS || mult[c] < -INTNET_MAX_MULT ||
            mult[c] > INTNET_MAX_MULT || (smult && (smult[c] < -INTNET_MAX_MULT || smult[c] > INTNET_MAX_MULT))) {
            PyErr_Format(PyExc_ValueError, "stage %d: bias/mult out of range", index); return -1;
        }
    st->weights = wt;
    st->bias = bias;
    st->mult = mult;
    st->skip_mult = smult;
    return 0;
}

/* All stage tuples, checked (each against the one before); a holds 4 buffer
 * slots per stage.  Returns the stage count, or -1. */
static int parse_stages(PyObject *o_stages, IntnetStage *st, Arg *a)
{
    PyObject *seq = PySequence_Fast(o_stages, "stages: expected a sequence");
    if (!seq) return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    if (k < 1 || k > INTNET_MAX_STAGES) { PyErr_SetString(PyExc_ValueError, "stages: 1 to 40 stages"); goto fail; }
    for (Py_ssize_t i = 0; i < k; i++) {
        if (parse_stage(PySequence_Fast_GET_ITEM(seq, i), (int)i, i == k - 1, &st[i], &a[4 * i])) goto fail;
        const IntnetLayer *L = &st[i].layer;
        if (i > 0) {
            const IntnetLayer *P = &st[i - 1].layer;
            if (L->h != intnet_out_size(P->h, P->kh, P->stride, P->pad) || L->cin != P->cout ||
                L->w != intnet_out_size(P->w, P->kw, P->stride, P->pad)) {
                PyErr_Format(PyExc_ValueError, "stage %zd: input does not match the previous stage's output", i); goto fail;
            }
        }
        if (st[i].skip_from >= 0) {
            const IntnetLayer *S = &st[st[i].skip_from].layer;
            if (S->h != intnet_out_size(L->h, L->kh, L->stride, L->pad) || S->cin != L->cout ||
                S->w != intnet_out_size(L->w, L->kw, L->stride, L->pad)) {
                PyErr_Format(PyExc_ValueError, "stage %zd: skip does not match the output's shape", i); goto fail;
            }
        }
    }
    Py_DECREF(seq);
    return (int)k;
fail:
    Py_DECREF(seq);
    return -1;
}

PyDoc_STRVAR(intnet_scratch_len_doc,
"intnet_scratch_len(stages, threads) -> int\n\n"
"The int16 elements of scratch space intnet_forward needs for these stages and threads.");

static PyObject *py_intnet_scratch_len(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_stages;
    int threads;
    if (!PyArg_ParseTuple(args, "Oi", &o_stages, &threads)) return NULL;
    Arg a[4 * INTNET_MAX_STAGES];
    memset(a, 0, sizeof a);
    IntnetStage st[INTNET_MAX_STAGES];
    PyObject *result = NULL;
    if (threads < 1 || threads > INTNET_MAX_THREADS) PyErr_SetString(PyExc_ValueError, "threads out of range");
    else {
        int k = parse_stages(o_stages, st, a);
        if (k > 0) result = PyLong_FromSize_t(intnet_scratch_len(st, k, threads));
    }
    release(a, 4 * INTNET_MAX_STAGES);
    return result;
}

static PyObject *py_intnet_forward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_x, *o_stages, *o_out, *o_scratch;
    Py_ssize_t n;
    int threads, simd;
    if (!PyArg_ParseTuple(args, "OnOiiOO", &o_x, &n, &o_stages, &threads, &simd, &o_out, &o_scratch)) return NULL;
    Arg a[4 * INTNET_MAX_STAGES + 3];
    memset(a, 0, sizeof a);
    IntnetStage st[INTNET_MAX_STAGES];
    Arg *ax = &a[4 * INTNET_MAX_STAGES], *aout = ax + 1, *ascr = ax + 2;
    if (n < 0 || threads < 1 || threads > INTNET_MAX_THREADS) { PyErr_SetString(PyExc_ValueError, "n or threads out of range"); goto fail; }
    int k = parse_stages(o_stages, st, a);
    if (k < 0) goto fail;
    int level = simd_select(simd);
    if (level < 0) { PyErr_SetString(PyExc_ValueError, "BLOCKCODEC_SIMD: unknown level (none, avx2)"); goto fail; }
    for (int i = 0; i < k; i++) {   /* every buffer of the batch must be addressable */
        Py_ssize_t m = (Py_ssize_t)st[i].layer.h * st[i].layer.w * (st[i].layer.cin > st[i].layer.cout ? st[i].layer.cin : st[i].layer.cout);
        if (n > PY_SSIZE_T_MAX / 8 / (m + 1)) { PyErr_SetString(PyExc_ValueError, "batch too large"); goto fail; }
    }
    const IntnetLayer *F0 = &st[0].layer, *FL = &st[k - 1].layer;
    Py_ssize_t in_map = (Py_ssize_t)F0->h * F0->w * F0->cin;
    Py_ssize_t out_map = (Py_ssize_t)intnet_out_size(FL->h, FL->kh, FL->stride, FL->pad) *
                         intnet_out_size(FL->w, FL->kw, FL->stride, FL->pad) * FL->cout;
    if (get_arg(o_x, ax, "x", 'h', 2, n * in_map, 0) ||
        get_arg(o_out, aout, "out", 'h', 2, n * out_map, 1) ||
        get_arg(o_scratch, ascr, "scratch", 'h', 2, -1, 1)) goto fail;
    if ((size_t)elements(ascr) < intnet_scratch_len(st, k, threads)) {
        PyErr_SetString(PyExc_ValueError, "scratch: smaller than intnet_scratch_len(stages, threads)"); goto fail;
    }
    const int16_t *x = ax->view.buf;
    int bad = 0;
    for (Py_ssize_t i = 0; i < n * in_map; i++)
        bad |= (x[i] < -INTNET_ACT_MAX) | (x[i] > INTNET_ACT_MAX);
    if (bad) { PyErr_SetString(PyExc_ValueError, "x: values must be in -128..128"); goto fail; }
    Py_BEGIN_ALLOW_THREADS
    intnet_forward(st, k, n, x, aout->view.buf, ascr->view.buf, threads, level);
    Py_END_ALLOW_THREADS
    release(a, 4 * INTNET_MAX_STAGES + 3);
    Py_RETURN_NONE;
fail:
    release(a, 4 * INTNET_MAX_STAGES + 3);
    return NULL;
}

/* ------------------------------------------------------------ post-filter network */

PyDoc_STRVAR(convnet8_run_doc,
"convnet8_run(plane, h, w, consts, buffers, ops, input, output, margin, tile, threads, simd, out)\n\n"
"The post-filter's integer network (cext/convnet8.h, docs/FORMAT.md section 6) over one\n"
"uint8 plane of h x w pixels.  consts: uint8 values of the input buffer's channels 1..C-1.\n"
"buffers: a sequence of (channels, type, zero), type 0 = uint8, 1 = int16.  ops: a sequence\n"
"of (kind, src, dst, skip, k, shift, lo, hi, weights, bias, mult), kind 0 = convolution\n"
"(weights int8 packed [k][k*cin/4][cpad][4], bias and mult int32[cout]), 1 = requantization\n"
"(weights and bias None, mult int32[1]); skip -1 or a buffer index.  out: writable uint8[h*w].\n"
"simd: -1 for BLOCKCODEC_SIMD or the best kernel, else a level (capped at the CPU's).\n"
"Every tile size, thread count and kernel gives the same output.");

static int parse_cn8(PyObject *o_buffers, PyObject *o_ops, Cn8Net *net, Arg *a)
{
    PyObject *bufs = PySequence_Fast(o_buffers, "buffers: expected a sequence");
    if (!bufs) return -1;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(bufs);
    if (nb < 2 || nb > CN8_MAX_BUFFERS) { PyErr_SetString(PyExc_ValueError, "buffers: 2 to 8 buffers"); Py_DECREF(bufs); return -1; }
    net->n_buffers = (int)nb;
    for (Py_ssize_t i = 0; i < nb; i++) {
        Cn8Buffer *B = &net->buf[i];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(bufs, i), "iii;buffer: (channels, type, zero)",
                              &B->channels, &B->type, &B->zero)) { Py_DECREF(bufs); return -1; }
    }
    Py_DECREF(bufs);
    PyObject *ops = PySequence_Fast(o_ops, "ops: expected a sequence");
    if (!ops) return -1;
    Py_ssize_t no = PySequence_Fast_GET_SIZE(ops);
    if (no < 1 || no > CN8_MAX_OPS) { PyErr_SetString(PyExc_ValueError, "ops: 1 to 48 steps"); goto fail; }
    net->n_ops = (int)no;
    for (Py_ssize_t i = 0; i < no; i++) {
        Cn8Op *op = &net->op[i];
        PyObject *o_w, *o_b, *o_m;
        memset(op, 0, sizeof *op);
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(ops, i), "iiiiiiiiOOO;op: (kind, src, dst, skip, k, shift, "
                              "lo, hi, weights, bias, mult)", &op->kind, &op->src, &op->dst, &op->skip, &op->k,
                              &op->shift, &op->lo, &op->hi, &o_w, &o_b, &o_m)) goto fail;
        if (op->dst < 0 || op->dst >= net->n_buffers || op->src < 0 || op->src >= net->n_buffers) {
            PyErr_Format(PyExc_ValueError, "op %zd: buffer index out of range", i); goto fail;
        }
        Arg *w = &a[3 * i], *b = w + 1, *m = w + 2;
        if (op->kind == CN8_CONV) {
            op->cout = net->buf[op->dst].channels;
            Py_ssize_t cpad = (op->cout + CN8_VEC - 1) / CN8_VEC * CN8_VEC;
            if (op->k < 1 || op->k > CN8_MAX_K) { PyErr_Format(PyExc_ValueError, "op %zd: kernel size out of range", i); goto fail; }
            if (get_arg(o_w, w, "weights", 'b', 1, (Py_ssize_t)op->k * op->k * net->buf[op->src].channels * cpad, 0) ||
                get_arg(o_b, b, "bias", 'i', 4, op->cout, 0) || get_arg(o_m, m, "mult", 'i', 4, op->cout, 0)) goto fail;
            op->weights = w->view.buf;
            op->bias = b->view.buf;
        } else {
            op->cout = net->buf[op->dst].channels;
            if (get_arg(o_m, m, "mult", 'i', 4, 1, 0)) goto fail;
        }
        op->mult = m->view.buf;
    }
    Py_DECREF(ops);
    const char *err = cn8_check(net);
    if (err) { PyErr_Format(PyExc_ValueError, "post-filter network: %s", err); return -1; }
    return 0;
fail:
    Py_DECREF(ops);
    return -1;
}

static PyObject *py_convnet8_run(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_plane, *o_consts, *o_buffers, *o_ops, *o_out;
    int h, w, input, output, margin, tile, threads, simd;
    if (!PyArg_ParseTuple(args, "OiiOOOiiiiiiO", &o_plane, &h, &w, &o_consts, &o_buffers, &o_ops, &input, &output,
                          &margin, &tile, &threads, &simd, &o_out)) return NULL;
    Arg a[3 * CN8_MAX_OPS + 3];
    memset(a, 0, sizeof a);
    Arg *ap = &a[3 * CN8_MAX_OPS], *ac = ap + 1, *ao = ap + 2;
    Cn8Net net;
    memset(&net, 0, sizeof net);
    net.input = input;
    net.output = output;
    net.margin = margin;
    if (h < 1 || w < 1 || h > 65535 || w > 65535) { PyErr_SetString(PyExc_ValueError, "plane size out of range"); goto fail; }
    if (tile < CN8_MIN_TILE || tile > CN8_MAX_TILE || threads < 1 || threads > CN8_MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "tile or threads out of range"); goto fail;
    }
    if (parse_cn8(o_buffers, o_ops, &net, a)) goto fail;
    int level = simd_select(simd);
    if (level < 0) { PyErr_SetString(PyExc_ValueError, "BLOCKCODEC_SIMD: unknown level (none, avx2)"); goto fail; }
    if (get_arg(o_plane, ap, "plane", 'B', 1, (Py_ssize_t)h * w, 0) ||
        get_arg(o_consts, ac, "consts", 'B', 1, net.buf[input].channels - 1, 0) ||
        get_arg(o_out, ao, "out", 'B', 1, (Py_ssize_t)h * w, 1)) goto fail;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = cn8_run(&net, ap->view.buf, h, w, w, ac->view.buf, ao->view.buf, w, tile, threads, level);
    Py_END_ALLOW_THREADS
    release(a, 3 * CN8_MAX_OPS + 3);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
fail:
    release(a, 3 * CN8_MAX_OPS + 3);
    return NULL;
}

PyDoc_STRVAR(simd_level_doc,
"simd_level(requested=-1) -> str\n\n"
"The kernel level the integer networks run for `requested` (-1: BLOCKCODEC_SIMD or the\n"
"best the CPU has): 'none' or 'avx2'.  ValueError for an unknown BLOCKCODEC_SIMD.");

PyDoc_STRVAR(eob_contexts_doc,
"eob_contexts(eob_row, blocks, n_cols, eob, ctx)\n\n"
"Pass A's EOB rows for one wavefront (cext/contexts.h).  eob_row: int32[66], the rows by\n"
"the neighbours' mean EOB 0..64, then 'no neighbour'; blocks: int32[n] raster indices;\n"
"eob: int32[n_blocks] (n_cols to a row); ctx: int64[n] output.");

/* Shared by the Pass A bindings: every block in range, and every EOB and
 * |DC - prediction| the rows read (the block's and its left and top
 * neighbours') within its table, so a corrupt stream cannot index past one. */
static int check_front(const int32_t *blocks, Py_ssize_t n, Py_ssize_t nb, Py_ssize_t n_cols,
                       const int32_t *eob, const int32_t *dmag, const char *who)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t b = blocks[i];
        if (b < 0 || b >= nb) goto bad;
        Py_ssize_t nbr[3] = {b, b % n_cols > 0 ? b - 1 : b, b >= n_cols ? b - n_cols : b};
        for (int j = 0; j < 3; j++) {
            if (eob[nbr[j]] < 0 || eob[nbr[j]] > DCTSIZE2 || (dmag && dmag[nbr[j]] < 0)) goto bad;
        }
    }
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "%s: a block out of range, or an EOB or DC magnitude outside its table", who);
    return -1;
}

static PyObject *py_eob_contexts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_row, *o_blk, *o_eob, *o_ctx;
    Py_ssize_t n_cols;
    if (!PyArg_ParseTuple(args, "OOnOO", &o_row, &o_blk, &n_cols, &o_eob, &o_ctx)) return NULL;
    Arg a[4];
    memset(a, 0, sizeof a);
    if (get_arg(o_row, &a[0], "eob_row", 'i', 4, CTX_EOB_LUT_LEN, 0)) goto fail;
    if (get_arg(o_blk, &a[1], "blocks", 'i', 4, -1, 0)) goto fail;
    if (get_arg(o_eob, &a[2], "eob", 'i', 4, -1, 0)) goto fail;
    Py_ssize_t n = elements(&a[1]), nb = elements(&a[2]);
    if (get_arg(o_ctx, &a[3], "ctx", 'q', 8, n, 1)) goto fail;
    if (n_cols < 1 || nb % n_cols) {
        PyErr_SetString(PyExc_ValueError, "eob_contexts: the plane is not whole rows of n_cols blocks");
        goto fail;
    }
    if (check_front(a[1].view.buf, n, nb, n_cols, a[2].view.buf, NULL, "eob_contexts")) goto fail;
    eob_contexts(a[0].view.buf, a[1].view.buf, n, n_cols, a[2].view.buf, a[3].view.buf);
    release(a, 4);
    Py_RETURN_NONE;
fail:
    release(a, 4);
    return NULL;
}

PyDoc_STRVAR(dc_contexts_doc,
"dc_contexts(dc_row, dc_prediction, blocks, n_cols, eob, coefs, dmag, sel, pred, ctx) -> m\n\n"
"Pass A's DC prediction and rows for the blocks of one wavefront with eob > 0\n"
"(cext/contexts.h).  dc_row: int32[132]; blocks: int32[n]; eob, dmag: int32[n_blocks];\n"
"coefs: int16[n_blocks*64], natural order (DC first); sel: int32[n], pred, ctx: int64[n]\n"
"outputs, of which the first m are written.");

static PyObject *py_dc_contexts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_row, *o_blk, *o_eob, *o_q, *o_dm, *o_sel, *o_pred, *o_ctx;
    int dc_prediction;
    Py_ssize_t n_cols;
    if (!PyArg_ParseTuple(args, "OpOnOOOOOO", &o_row, &dc_prediction, &o_blk, &n_cols, &o_eob, &o_q, &o_dm,
                          &o_sel, &o_pred, &o_ctx)) return NULL;
    Arg a[8];
    memset(a, 0, sizeof a);
    if (get_arg(o_row, &a[0], "dc_row", 'i', 4, CTX_DC_LUT_LEN, 0)) goto fail;
    if (get_arg(o_blk, &a[1], "blocks", 'i', 4, -1, 0)) goto fail;
    if (get_arg(o_eob, &a[2], "eob", 'i', 4, -1, 0)) goto fail;
    Py_ssize_t n = elements(&a[1]), nb = elements(&a[2]);
    if (get_arg(o_q, &a[3], "coefs", 'h', 2, nb * DCTSIZE2, 0)) goto fail;
    if (get_arg(o_dm, &a[4], "dmag", 'i', 4, nb, 0)) goto fail;
    if (get_arg(o_sel, &a[5], "sel", 'i', 4, n, 1)) goto fail;
    if (get_arg(o_pred, &a[6], "pred", 'q', 8, n, 1)) goto fail;
    if (get_arg(o_ctx, &a[7], "ctx", 'q', 8, n, 1)) goto fail;
    if (n_cols < 1 || nb % n_cols) {
        PyErr_SetString(PyExc_ValueError, "dc_contexts: the plane is not whole rows of n_cols blocks");
        goto fail;
    }
    if (check_front(a[1].view.buf, n, nb, n_cols, a[2].view.buf, a[4].view.buf, "dc_contexts")) goto fail;
    Py_ssize_t m = dc_contexts(a[0].view.buf, dc_prediction, a[1].view.buf, n, n_cols, a[2].view.buf,
                               a[3].view.buf, DCTSIZE2, a[4].view.buf, a[5].view.buf, a[6].view.buf,
                               a[7].view.buf);
    release(a, 8);
    return PyLong_FromSsize_t(m);
fail:
    release(a, 8);
    return NULL;
}

PyDoc_STRVAR(ac_contexts_doc,
"ac_contexts(ac_row, nb4_bucket, n_refine, k, zz_up, zz_left, blocks, n_cols, capped, eob,\n"
"            eob_top, eob_left, second_half, ctx, last)\n\n"
"Pass B's AC contexts at zigzag position k for a batch of blocks (cext/contexts.h).\n"
"ac_row: int32[64*9*17*3] row groups; nb4_bucket: int32 refinements; blocks: int32[n], each\n"
"with eob > k; capped: uint8[(n_blocks+1)*65]; eob: int32[n_blocks] (raster order, n_cols\n"
"to a row); eob_top, eob_left: int8[n_blocks]; second_half: refine by the four neighbours\n"
"at k; ctx, last: int64[n] outputs.");

static PyObject *py_ac_contexts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_row, *o_nb4, *o_blk, *o_cap, *o_eob, *o_et, *o_el, *o_ctx, *o_last;
    int n_refine, k, zz_up, zz_left, second;
    Py_ssize_t n_cols;
    if (!PyArg_ParseTuple(args, "OOiiiiOnOOOOpOO", &o_row, &o_nb4, &n_refine, &k, &zz_up, &zz_left, &o_blk, &n_cols,
                          &o_cap, &o_eob, &o_et, &o_el, &second, &o_ctx, &o_last)) return NULL;
    Arg a[10];
    memset(a, 0, sizeof a);
    if (get_arg(o_row, &a[0], "ac_row", 'i', 4, CTX_AC_LUT_LEN, 0)) goto fail;
    if (get_arg(o_nb4, &a[1], "nb4_bucket", 'i', 4, -1, 0)) goto fail;
    if (get_arg(o_blk, &a[2], "blocks", 'i', 4, -1, 0)) goto fail;
    if (get_arg(o_eob, &a[3], "eob", 'i', 4, -1, 0)) goto fail;
    Py_ssize_t n = elements(&a[2]), nb = elements(&a[3]);
    if (get_arg(o_cap, &a[4], "capped", 'B', 1, (nb + 1) * CTX_STRIDE, 0)) goto fail;
    if (get_arg(o_et, &a[5], "eob_top", 'b', 1, nb, 0)) goto fail;
    if (get_arg(o_el, &a[6], "eob_left", 'b', 1, nb, 0)) goto fail;
    if (get_arg(o_ctx, &a[8], "ctx", 'q', 8, n, 1)) goto fail;
    if (get_arg(o_last, &a[9], "last", 'q', 8, n, 1)) goto fail;
    if (k < 1 || k >= DCTSIZE2 || zz_up < 0 || zz_up > DCTSIZE2 || zz_left < 0 || zz_left > DCTSIZE2
        || n_refine < 1 || elements(&a[1]) < 1 || n_cols < 1 || nb % n_cols) {
        PyErr_SetString(PyExc_ValueError, "ac_contexts: bad position or rule");
        goto fail;
    }
    const int32_t *blocks = a[2].view.buf, *eob = a[3].view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (blocks[i] < 0 || blocks[i] >= nb || eob[blocks[i]] <= k || eob[blocks[i]] > DCTSIZE2) {
            PyErr_SetString(PyExc_ValueError, "ac_contexts: a block out of range, or not coding at k");
            goto fail;
        }
    }
    AcContextRule rule = {a[0].view.buf, a[1].view.buf, (int)elements(&a[1]) - 1, n_refine, zz_up, zz_left};
    ac_contexts(&rule, k, blocks, n, nb, n_cols, a[4].view.buf, eob, a[5].view.buf, a[6].view.buf, second,
                a[8].view.buf, a[9].view.buf);
    release(a, 10);
    Py_RETURN_NONE;
fail:
    release(a, 10);
    return NULL;
}

PyDoc_STRVAR(adapt_rows_doc,
"adapt_rows(rows, n_symbols, ctx, symbols, increment, cap_per_mille)\n\n"
"The entropy coder's adaptation after a batch (cext/adapt.h): adds increment at\n"
"rows[ctx[i], symbols[i]] for every i, then with cap_per_mille > 0 caps each listed row's\n"
"largest entry.  rows: float64[n_rows*n_symbols] of exact integers, updated in place;\n"
"ctx, symbols: int64[n].  Raises ValueError on an index out of range, OverflowError\n"
"where an entry would pass 2^46.");

static PyObject *py_adapt_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_rows, *o_ctx, *o_sym;
    int n_symbols, cap;
    double inc;
    if (!PyArg_ParseTuple(args, "OiOOdi", &o_rows, &n_symbols, &o_ctx, &o_sym, &inc, &cap)) return NULL;
    Arg a[3];
    memset(a, 0, sizeof a);
    if (get_arg(o_rows, &a[0], "rows", 'd', 8, -1, 1)) goto fail;
    if (get_arg(o_ctx, &a[1], "ctx", 'q', 8, -1, 0)) goto fail;
    if (get_arg(o_sym, &a[2], "symbols", 'q', 8, elements(&a[1]), 0)) goto fail;
    if (n_symbols < 1 || n_symbols > 128 || elements(&a[0]) % n_symbols || cap < 0 || cap >= 1000
        || !(inc >= 0 && inc <= 65536)) {
        PyErr_SetString(PyExc_ValueError, "adapt_rows: bad table shape, increment or cap");
        goto fail;
    }
    Py_ssize_t n_rows = elements(&a[0]) / n_symbols, n = elements(&a[1]);
    const int64_t *ctx = a[1].view.buf, *sym = a[2].view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ctx[i] < 0 || ctx[i] >= n_rows || sym[i] < 0 || sym[i] >= n_symbols) {
            PyErr_SetString(PyExc_ValueError, "adapt_rows: context or symbol out of range");
            goto fail;
        }
    }
    if (adapt_rows(a[0].view.buf, n_rows, n_symbols, ctx, sym, n, inc, cap)) {
        PyErr_SetString(PyExc_OverflowError, "adapt_rows: a frequency would pass 2^46");
        goto fail;
    }
    release(a, 3);
    Py_RETURN_NONE;
fail:
    release(a, 3);
    return NULL;
}

static PyObject *py_simd_level(PyObject *self, PyObject *args)
{
    (void)self;
    int requested = -1;
    if (!PyArg_ParseTuple(args, "|i", &requested)) return NULL;
    int level = simd_select(requested);
    if (level < 0) { PyErr_SetString(PyExc_ValueError, "BLOCKCODEC_SIMD: unknown level (none, avx2)"); return NULL; }
    return PyUnicode_FromString(simd_name(level));
}

static PyMethodDef methods[] = {
    {"fdct_quantize", py_fdct_quantize, METH_VARARGS, fdct_quantize_doc},
    {"rdo_quantize", py_rdo_quantize, METH_VARARGS, rdo_quantize_doc},
    {"rate_costs", py_rate_costs, METH_VARARGS, rate_costs_doc},
    {"adapt_rows", py_adapt_rows, METH_VARARGS, adapt_rows_doc},
    {"eob_contexts", py_eob_contexts, METH_VARARGS, eob_contexts_doc},
    {"dc_contexts", py_dc_contexts, METH_VARARGS, dc_contexts_doc},
    {"ac_contexts", py_ac_contexts, METH_VARARGS, ac_contexts_doc},
    {"reconstruct", py_reconstruct, METH_VARARGS, reconstruct_doc},
    {"dequant_idct", py_dequant_idct, METH_VARARGS, dequant_idct_doc},
    {"gather_blocks", py_gather_blocks, METH_VARARGS, gather_blocks_doc},
    {"scatter_blocks", py_scatter_blocks, METH_VARARGS, scatter_blocks_doc},
    {"gather_contexts", py_gather_contexts, METH_VARARGS, gather_contexts_doc},
    {"planar_predict", py_planar_predict, METH_VARARGS, planar_predict_doc},
    {"requantize", py_requantize, METH_VARARGS, requantize_doc},
    {"intnet_forward", py_intnet_forward, METH_VARARGS, intnet_forward_doc},
    {"intnet_scratch_len", py_intnet_scratch_len, METH_VARARGS, intnet_scratch_len_doc},
    {"convnet8_run", py_convnet8_run, METH_VARARGS, convnet8_run_doc},
    {"simd_level", py_simd_level, METH_VARARGS, simd_level_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "blockcodec._cext",
    "blockcodec's C core: integer 8x8 DCT, quantization, reconstruction and block glue.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cext(void)
{
    /* dct.c's DESCALE (and intnet.c's requantization) rely on arithmetic
     * right shift of negative values. */
    volatile int64_t probe = -3;
    if ((probe >> 1) != -2) {
        PyErr_SetString(PyExc_ImportError, "blockcodec._cext needs arithmetic right shifts");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "FDCT_FRAC_BITS", FDCT_FRAC_BITS) ||
        PyModule_AddIntConstant(m, "DEQUANT_LIMIT", DEQUANT_LIMIT) ||
        PyModule_AddIntConstant(m, "DCTSIZE", DCTSIZE) ||
        PyModule_AddIntConstant(m, "CONTEXT", CONTEXT)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
