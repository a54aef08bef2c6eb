"""Business operations. Each takes an explicit ``Identity``; none imports Flask."""
