"""The `jtoolformer` command line: the entry point (`main`) and the arguments subcommands share (`args`)."""
