"""PaliGemma models as every stage uses them: loading a base (the tiny local preset, a local
folder or a hub id), presets of the published checkpoints, the tiny base's builder, opening
images and greedy generation over prompt batches."""
