"""The plumbing the recipe scripts share: arguments, data, labels, metrics, the training run and its report."""
