"""BentoML services (thin shells over ``qanchor.serving``)."""
