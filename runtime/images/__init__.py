"""Torch-free image I/O and pre/post-processing shared by the CLI, export, runtimes and benchmarks.

Everything here is numpy + OpenCV and runs on Python 3.8 (Jetson). Images are uint8 RGB arrays,
HxWx3 (or NxHxWx3 for batches); networks take ImageNet-normalized float32 NCHW.

One module per job; this package's namespace is the API the rest of the project uses
(``from infusionnet.runtime import images; images.read_image(...)``):

    errors         ImageError
    headers        format, size, EXIF orientation and truncation read from the file's header
    read           read_image: decode, to 8-bit RGB, upright; decompression-bomb limits
    write          write_image: atomic, format from the suffix
    resize         resize policies (Resize, parse_resize) and resize_array
    prepare        network-ready sizes: plan_image, prepare_with/restore_image, Letterbox
    normalization  normalize / denormalize (ImageNet mean and std)
    files          is_image_file, list_images
    sheets         make_grid, stack_rows, contact_sheet
"""
from .errors import ImageError
from .files import IMAGE_SUFFIXES, is_image_file, list_images
from .normalization import MEAN, STD, denormalize, denormalize_output, normalize
from .prepare import Letterbox, Restore, check_work, plan_image, prepare_image, prepare_with, restore_image
from .read import MAX_PIXELS, check_pixels, read_image
from .resize import Resize, parse_resize, resize_array
from .sheets import contact_sheet, make_grid, stack_rows
from .write import write_image

__all__ = ["MEAN", "STD", "MAX_PIXELS", "IMAGE_SUFFIXES", "ImageError", "read_image", "check_pixels",
           "write_image", "Resize", "parse_resize", "resize_array", "Restore", "plan_image", "check_work",
           "prepare_with", "prepare_image", "restore_image", "Letterbox", "normalize", "denormalize",
           "denormalize_output", "is_image_file", "list_images", "make_grid", "stack_rows", "contact_sheet"]
