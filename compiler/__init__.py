"""Graph transforms and source rendering (the compiler). Depends on ``aprender.ir`` only."""
