"""Applications on top of the other layers: the command line, the HTTP service, the testbed tooling."""
