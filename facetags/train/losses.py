"""Triplet losses (batch-hard, batch-all) and distillation from the dlib teacher.

Embeddings are L2-normalised, so distances are Euclidean on the unit sphere (0..2). Rows whose
label is negative (faces without an identity) take no part in the triplet terms.
"""

from __future__ import annotations

import tensorflow as tf


def pairwise_distances(emb: tf.Tensor) -> tf.Tensor:
    dot = tf.matmul(emb, emb, transpose_b=True)
    sq = tf.linalg.diag_part(dot)
    d2 = tf.maximum(sq[:, None] - 2.0 * dot + sq[None, :], 0.0)
    # sqrt has an infinite gradient at 0: add a tiny epsilon where the distance is zero
    zero = tf.cast(tf.equal(d2, 0.0), d2.dtype)
    return tf.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


def _masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    labels = tf.reshape(labels, [-1])
    valid = labels >= 0
    both = tf.logical_and(valid[:, None], valid[None, :])
    same = tf.logical_and(tf.equal(labels[:, None], labels[None, :]), both)
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    positive = tf.logical_and(same, not_self)
    negative = tf.logical_and(tf.logical_not(tf.equal(labels[:, None], labels[None, :])), both)
    return positive, negative


def batch_hard_triplet(emb: tf.Tensor, labels: tf.Tensor, margin: float = 0.3) -> tf.Tensor:
    """For each anchor: its farthest positive and nearest negative in the batch (Hermans et al.)."""
    d = pairwise_distances(emb)
    pos, neg = _masks(labels)
    posf, negf = tf.cast(pos, d.dtype), tf.cast(neg, d.dtype)
    hardest_pos = tf.reduce_max(d * posf, axis=1)
    max_d = tf.reduce_max(d)
    hardest_neg = tf.reduce_min(d + max_d * (1.0 - negf), axis=1)
    has = tf.logical_and(tf.reduce_any(pos, axis=1), tf.reduce_any(neg, axis=1))
    losses = tf.nn.relu(hardest_pos - hardest_neg + margin)
    losses = tf.boolean_mask(losses, has)
    return tf.cond(tf.size(losses) > 0, lambda: tf.reduce_mean(losses), lambda: tf.constant(0.0))


def batch_all_triplet(emb: tf.Tensor, labels: tf.Tensor, margin: float = 0.3) -> tf.Tensor:
    """Mean over every valid (anchor, positive, negative) triplet that still violates the margin."""
    d = pairwise_distances(emb)
    pos, neg = _masks(labels)
    loss = d[:, :, None] - d[:, None, :] + margin  # [a, p, n]
    valid = tf.logical_and(pos[:, :, None], neg[:, None, :])
    loss = tf.nn.relu(loss) * tf.cast(valid, loss.dtype)
    active = tf.reduce_sum(tf.cast(loss > 1e-12, loss.dtype))
    return tf.reduce_sum(loss) / (active + 1e-12)


def cosine_distill(student: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """Mean (1 - cos) between each student vector and the teacher's for the same face."""
    teacher = tf.math.l2_normalize(teacher, axis=1)
    return tf.reduce_mean(1.0 - tf.reduce_sum(student * teacher, axis=1))


def relational_distill(student: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """Mean squared difference between the two batch similarity matrices."""
    teacher = tf.math.l2_normalize(teacher, axis=1)
    s = tf.matmul(student, student, transpose_b=True)
    t = tf.matmul(teacher, teacher, transpose_b=True)
    return tf.reduce_mean(tf.square(s - t))


TRIPLET = {"batch-hard": batch_hard_triplet, "batch-all": batch_all_triplet}
