"""Pictures: bird's-eye-view plots and camera overlays (matplotlib, no display needed)."""

from .bev import plot_bev
from .camera import draw_boxes_on_image

__all__ = ["plot_bev", "draw_boxes_on_image"]
