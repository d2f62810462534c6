"""Input-size plugins: run a model at another input size."""
