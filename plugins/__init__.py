"""spadekit's first-party plugins, registered through entry points exactly as a third party's would be."""
