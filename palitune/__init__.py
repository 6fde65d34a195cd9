"""palitune: fine-tune PaliGemma into task specialists and keep them fresh."""

__version__ = "0.1.0"
