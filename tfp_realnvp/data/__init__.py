"""Image data for training flows: 8-bit images in, dequantized float32 batches out.

`load_images(source, split)` returns a batched `tf.data.Dataset` of float32 images in `[0, 1)`
from a source: the embedded `"digits"`, an `.npz` file, a folder of images, a TensorFlow
Datasets name, or any kind of `ImageSource` added with `register_source`. Splits may be sliced
as in TFDS (`"train[:90%]"`). The guide page "Data: sources, splits and dequantization" explains
the splits of a run and bits/dim; "Adding a data source" shows how to add a kind.
"""

from tfp_realnvp.dequantization import dequantize
from tfp_realnvp.data.files import FolderSource
from tfp_realnvp.data.files import NpzSource
from tfp_realnvp.data.pipeline import get_source
from tfp_realnvp.data.pipeline import image_shape
from tfp_realnvp.data.pipeline import load_images
from tfp_realnvp.data.pipeline import num_examples
from tfp_realnvp.data.pipeline import run_name
from tfp_realnvp.data.sources import DIGITS
from tfp_realnvp.data.sources import DigitsSource
from tfp_realnvp.data.sources import ImageSource
from tfp_realnvp.data.sources import InMemorySource
from tfp_realnvp.data.sources import SOURCES
from tfp_realnvp.data.sources import register_source
from tfp_realnvp.data.splits import HOLDOUT_FRACTION
from tfp_realnvp.data.tfds import TfdsSource

__all__ = ["DIGITS", "HOLDOUT_FRACTION", "SOURCES", "DigitsSource", "FolderSource", "ImageSource",
           "InMemorySource", "NpzSource", "TfdsSource", "dequantize", "get_source", "image_shape",
           "load_images", "num_examples", "register_source", "run_name"]
