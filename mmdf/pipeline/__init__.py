"""The one-command demo: data, prepare, train every branch, stack, report."""
