"""The one place that imports Keras.

pm_zoo runs on Keras 2 through the ``tf_keras`` package: from TensorFlow 2.16 on,
the Keras bundled with TensorFlow is Keras 3, which TensorFlow Probability's
layers and ``tfp.bijectors.AutoregressiveNetwork`` do not support. Every other
module does ``from pm_zoo.keras_api import keras`` and never uses the bundled
Keras.
"""
import tf_keras as keras

__all__ = ["keras"]
