"""Pure builders: a PinstackEnvironment spec in, the desired state out. No I/O."""
