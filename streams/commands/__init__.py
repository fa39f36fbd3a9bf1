"""CLI subcommands: each module has HELP, EXAMPLES, add_arguments(parser) and run(args)."""
