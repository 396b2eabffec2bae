import io

import numpy as np
import pytest
from PIL import Image

from remi.audit.rendering import sample_png


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (16,)])
def test_sample_thumbnail_renders_grey_and_colour_images_and_feature_vectors(shape):
    png = sample_png(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    image = Image.open(io.BytesIO(png))
    assert image.size == ((shape[-1], shape[-2]) if len(shape) == 3 else (shape[0], 1))
