"""AWS building blocks (pulumi-aws): the same vocabulary as components/azure - blocks with secure defaults
that grant access only through ``grant_*`` methods, each creating the narrowest statement on known ARNs."""
