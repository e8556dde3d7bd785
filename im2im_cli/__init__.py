"""The ``im2im`` command line: LightningCLI subcommands plus plain ones (plugins, presets)."""
