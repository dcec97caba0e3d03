"""The `spadekit` command line: one module per command group, kept thin (parse, call, print)."""
