"""Training: composes model/ and data/ into runs. Its packages, lowest first (each imports only those before it,
and none imports flags/, inference/ or an entry point): compute (what the devices run), distribute (strategies
and clusters), rundir (what a run keeps on disk), evaluation, benchmark (timing) and loop (a run, start to end).
docs/architecture.md draws the layers."""
