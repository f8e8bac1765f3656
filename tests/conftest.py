pytest_plugins = ["tests.servers", "tests.deployment"]
