"""A small image classifier whose penultimate layer embeds images.

Precision and recall of generated images (``pm_zoo.precision_recall``) need
an embedding; Inception's weights are not reachable offline, so pm_zoo
trains this classifier once on a training split and caches its weights:

  conv 3x3 32 (ReLU) -> max-pool 2 -> conv 3x3 64 (ReLU) -> max-pool 2 ->
  flatten -> dense 128 (ReLU) = the embedding -> dense num_classes.

Images ``[N, H, W, C]`` in [0, 1]; embeddings ``[N, 128]``. The cache is a
folder holding ``weights.*`` (a tf.train checkpoint) and ``classifier.json``
(shape, classes, training accuracy and test accuracy where labels were
given), keyed by the caller's name (e.g. 'mnist').
"""
import json
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from pm_zoo.errors import UserError
from pm_zoo.keras_api import keras

EMBEDDING_DIM = 128


def build(image_shape, num_classes: int) -> keras.Model:
  inputs = keras.Input(shape=tuple(image_shape))
  h = keras.layers.Conv2D(32, 3, padding='same', activation='relu')(inputs)
  h = keras.layers.MaxPooling2D(2)(h)
  h = keras.layers.Conv2D(64, 3, padding='same', activation='relu')(h)
  h = keras.layers.MaxPooling2D(2)(h)
  h = keras.layers.Flatten()(h)
  embedding = keras.layers.Dense(EMBEDDING_DIM, activation='relu',
                                 name='embedding')(h)
  logits = keras.layers.Dense(num_classes, name='logits')(embedding)
  return keras.Model(inputs, [logits, embedding])


def load_or_train(cache_dir: str, images: np.ndarray, labels: np.ndarray,
                  epochs: int = 2, batch_size: int = 128, seed: int = 0,
                  test_images: Optional[np.ndarray] = None,
                  test_labels: Optional[np.ndarray] = None) -> keras.Model:
  """The classifier cached in ``cache_dir``, trained there first if absent."""
  if labels is None:
    raise UserError('the embedding classifier needs labelled training '
                    'images: use a dataset with labels')
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int64)
  num_classes = int(labels.max()) + 1
  model = build(images.shape[1:], num_classes)
  meta_path = os.path.join(cache_dir, 'classifier.json')
  prefix = os.path.join(cache_dir, 'weights')
  checkpoint = tf.train.Checkpoint(model=model)
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
    if (tuple(meta['image_shape']) != images.shape[1:] or
        meta['num_classes'] != num_classes):
      raise UserError(f'the classifier cached in {cache_dir} is for images '
                      f"{meta['image_shape']} with {meta['num_classes']} "
                      'classes: pass another --classifier_dir')
    checkpoint.restore(meta['checkpoint']).expect_partial()
    return model
  keras.utils.set_random_seed(seed)
  optimizer = keras.optimizers.Adam(1e-3)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=True)[0])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  rng = np.random.default_rng(seed)
  for epoch in range(epochs):
    order = rng.permutation(len(images))
    for i in range(0, len(images) - batch_size + 1, batch_size):
      idx = order[i:i + batch_size]
      loss = step(images[idx], labels[idx])
    logging.info('embedding classifier: epoch %d loss %.4f', epoch + 1,
                 float(loss))
  meta = {'image_shape': list(images.shape[1:]), 'num_classes': num_classes,
          'epochs': epochs,
          'train_accuracy': accuracy(model, images[:10000], labels[:10000])}
  if test_images is not None and test_labels is not None:
    meta['test_accuracy'] = accuracy(model, test_images, test_labels)
  os.makedirs(cache_dir, exist_ok=True)
  meta['checkpoint'] = checkpoint.write(prefix)
  with open(meta_path, 'w') as f:
    json.dump(meta, f, indent=1)
  return model


def accuracy(model, images, labels) -> float:
  logits = np.concatenate([model(images[i:i + 1000])[0].numpy()
                           for i in range(0, len(images), 1000)])
  return float((logits.argmax(-1) == np.asarray(labels)).mean())


def embed(model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  """Penultimate-layer embeddings ``[N, 128]`` of images ``[N, H, W, C]``."""
  images = np.asarray(images, np.float32)
  return np.concatenate([model(images[i:i + batch_size])[1].numpy()
                         for i in range(0, len(images), batch_size)])
