"""Whole-image prediction: streaming sliding windows, TTA, post-processing, OME-TIFF/OME-Zarr output.

``predict(model_or_checkpoint, array)`` predicts an array in memory (or streams it to a store);
``predict_file`` does the same for an image file. ``im2im predict`` uses the same engine.
"""

from im2im_core.inference.checkpoint import load_model, read_checkpoint
from im2im_core.inference.options import Inference, PredictionSettings
from im2im_core.inference.postprocess import Postprocess
from im2im_core.inference.predict_array import predict
from im2im_core.inference.predict_batch import predict_batch
from im2im_core.inference.predict_file import predict_file

__all__ = ["Inference", "Postprocess", "PredictionSettings", "load_model", "predict", "predict_batch", "predict_file",
           "read_checkpoint"]
