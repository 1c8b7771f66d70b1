"""labdock: a research lab's service platform on one Docker host."""

__version__ = "0.1.0"
