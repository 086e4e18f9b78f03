"""The one-command demo: data, prepare, train both branches, stack, report."""
