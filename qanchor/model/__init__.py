"""The Q-Anchor model: backbones and event encoders, the coarse-to-fine user encoder, towers and losses."""
