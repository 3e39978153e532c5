"""vid2reid: RGB walking videos -> 3D skeletons -> unsupervised skeleton re-ID."""

__version__ = "0.1.0"
