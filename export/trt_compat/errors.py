"""The error of the compatibility check: a path, file or version it cannot work with."""
from infusionnet.runtime.errors import InfusionNetError


class TrtCheckError(InfusionNetError):
    """A path, file or TensorRT version the compatibility check cannot work with."""
